#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_WORKER_METRICS_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_WORKER_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "common/rpc/rpc_metrics.h"

// The inference worker's Prometheus metrics (names: the metric catalogue, issue 5).
namespace semshare::worker {

// Thread-safe. Registers its families in `registry`, which must outlive it.
class WorkerMetrics {
 public:
  explicit WorkerMetrics(prometheus::Registry& registry);

  // A request the worker served (admitted): `outcome` is hit | miss | bypass | error.
  void RecordRequest(const std::string& tenant, absl::string_view outcome);
  // A request refused because the queue was full (not counted in RecordRequest).
  void RecordRejected();
  // The scheduler's state: requests admitted (prefilling or decoding) and waiting, and the KV
  // reserved by those admitted against the budget.
  void SetLoad(int32_t in_flight, int32_t queued, int64_t kv_reserved_bytes,
               int64_t kv_budget_bytes);
  // One batched decode step of `batch_size` requests.
  void RecordDecodeStep(int32_t batch_size);
  // How long an admitted request waited in the queue.
  void RecordQueueWait(double seconds);
  // One FetchKV transfer from a shard: the KV bytes it brought and its duration.
  void RecordFetch(const std::string& tenant, int64_t bytes, double seconds);
  void RecordLocalCacheHit();
  void SetLocalCache(int64_t bytes, int64_t references);
  // A new reference for a shard: stored | dropped (the store queue was full) | failed.
  void RecordStore(absl::string_view result);
  void RecordRpc(absl::string_view method, absl::string_view code, double seconds);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Gauge& in_flight_;
  prometheus::Gauge& queue_depth_;
  prometheus::Counter& rejected_;
  prometheus::Gauge& kv_reserved_bytes_;
  prometheus::Gauge& kv_budget_bytes_;
  prometheus::Histogram& decode_batch_size_;
  prometheus::Histogram& queue_seconds_;
  prometheus::Family<prometheus::Counter>& kv_fetched_bytes_;
  prometheus::Histogram& kv_fetch_seconds_;
  prometheus::Gauge& local_cache_bytes_;
  prometheus::Gauge& local_cache_references_;
  prometheus::Counter& local_cache_hits_;
  prometheus::Family<prometheus::Counter>& stores_;
  RpcMetrics rpcs_;
};

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_WORKER_METRICS_H_
