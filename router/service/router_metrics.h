#ifndef SEMSHARE_ROUTER_SERVICE_ROUTER_METRICS_H_
#define SEMSHARE_ROUTER_SERVICE_ROUTER_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/rpc/rpc_metrics.h"
#include "semshare/v1/common.pb.h"

// The router's Prometheus metrics (names and buckets: the metric catalogue, issue 5).
namespace semshare::router {

// hit | miss | bypass | error: how a request through Router::Generate ended.
std::string RequestOutcome(const absl::StatusOr<v1::GenerateStats>& stats);

// Thread-safe. Registers its families in `registry`, which must outlive it.
class RouterMetrics {
 public:
  explicit RouterMetrics(prometheus::Registry& registry);

  // One request: its outcome by tenant, TTFT and latency by outcome, and for a served one the
  // shares of a hit and the stage times. `best_similarity`: the best reference the shards
  // offered, at or below the threshold (none: no candidate).
  void RecordRequest(const std::string& tenant, const absl::StatusOr<v1::GenerateStats>& stats,
                     std::optional<double> best_similarity);
  void RequestStarted();
  void RequestEnded();
  void RecordWorkerRetry();
  void SetShardUp(const std::string& shard, bool up);
  void SetWorkerUp(const std::string& worker, bool up);
  // A server call of any front: `method` e.g. "Generate", "http_completions"; `code` the
  // status code name, e.g. "OK".
  void RecordRpc(absl::string_view method, absl::string_view code, double seconds);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& ttft_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Histogram& similarity_;
  prometheus::Histogram& recompute_share_;
  prometheus::Histogram& kv_kept_share_;
  prometheus::Family<prometheus::Histogram>& stage_;
  prometheus::Gauge& in_flight_;
  prometheus::Counter& worker_retries_;
  prometheus::Family<prometheus::Gauge>& shard_up_;
  prometheus::Family<prometheus::Gauge>& worker_up_;
  RpcMetrics rpcs_;
};

}  // namespace semshare::router

#endif  // SEMSHARE_ROUTER_SERVICE_ROUTER_METRICS_H_
