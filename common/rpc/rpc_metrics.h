#ifndef SEMSHARE_COMMON_RPC_RPC_METRICS_H_
#define SEMSHARE_COMMON_RPC_RPC_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <string>

#include "absl/status/status.h"
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

// Request-scale seconds, 5 ms to 60 s (the catalogue's TTFT and latency buckets).
const prometheus::Histogram::BucketBoundaries& RequestSecondsBuckets();
// The same from 0.5 ms, for what can take less than a millisecond (stages, transfers).
const prometheus::Histogram::BucketBoundaries& FineSecondsBuckets();

// A family with one series and no labels.
prometheus::Gauge& UnlabelledGauge(prometheus::Registry& registry, const std::string& name,
                                   const std::string& help);
prometheus::Counter& UnlabelledCounter(prometheus::Registry& registry, const std::string& name,
                                       const std::string& help);

// Runs `body` (returning absl::Status) as one call of `method` and records it with
// `metrics->RecordRpc(method, code name, seconds)`; `metrics` may be null. The one way every
// server times its calls.
template <typename Metrics, typename Body>
absl::Status RecordedCall(Metrics* metrics, absl::string_view method, Body body) {
  const auto start = std::chrono::steady_clock::now();
  const absl::Status status = body();
  if (metrics != nullptr) {
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    metrics->RecordRpc(method, absl::StatusCodeToString(status.code()), elapsed.count());
  }
  return status;
}

}  // namespace semshare

#endif  // SEMSHARE_COMMON_RPC_RPC_METRICS_H_
