#ifndef SEMSHARE_COMMON_RPC_RPC_METRICS_H_
#define SEMSHARE_COMMON_RPC_RPC_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

#include "absl/strings/string_view.h"

namespace semshare {

// A server's calls: `PREFIX_rpcs_total{method, code}` and `PREFIX_rpc_seconds{method}`, as
// every semshare process reports them. Thread-safe; `registry` must outlive it.
class RpcMetrics {
 public:
  RpcMetrics(prometheus::Registry& registry, const std::string& prefix);

  // `code` is the status code name, e.g. "OK", "NOT_FOUND".
  void Record(absl::string_view method, absl::string_view code, double seconds);

 private:
  prometheus::Family<prometheus::Counter>& rpcs_;
  prometheus::Family<prometheus::Histogram>& rpc_seconds_;
};

}  // namespace semshare

#endif  // SEMSHARE_COMMON_RPC_RPC_METRICS_H_
