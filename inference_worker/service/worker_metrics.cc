#include "inference_worker/service/worker_metrics.h"

namespace semshare::worker {

WorkerMetrics::WorkerMetrics(prometheus::Registry& registry)
    : requests_(
          prometheus::BuildCounter()
              .Name("semshare_worker_requests_total")
              .Help("Generate requests served, by tenant and outcome (hit, miss, bypass, error)")
              .Register(registry)),
      in_flight_(UnlabelledGauge(registry, "semshare_worker_in_flight_requests",
                                 "Requests admitted by the scheduler: prefilling or decoding")),
      queue_depth_(UnlabelledGauge(registry, "semshare_worker_queue_depth",
                                   "Requests waiting for admission (batch room and KV budget)")),
      rejected_(UnlabelledCounter(registry, "semshare_worker_rejected_requests_total",
                                  "Requests refused with RESOURCE_EXHAUSTED: the queue was full")),
      kv_reserved_bytes_(UnlabelledGauge(registry, "semshare_worker_kv_reserved_bytes",
                                         "KV bytes reserved by admitted requests")),
      kv_budget_bytes_(UnlabelledGauge(registry, "semshare_worker_kv_budget_bytes",
                                       "The scheduler's KV budget (--kv-budget-bytes)")),
      decode_batch_size_(
          prometheus::BuildHistogram()
              .Name("semshare_worker_decode_batch_size")
              .Help("Requests advanced together by each batched decode step")
              .Register(registry)
              .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128})),
      queue_seconds_(prometheus::BuildHistogram()
                         .Name("semshare_worker_queue_seconds")
                         .Help("Time admitted requests waited in the worker's queue")
                         .Register(registry)
                         .Add({}, FineSecondsBuckets())),
      kv_fetched_bytes_(prometheus::BuildCounter()
                            .Name("semshare_worker_kv_fetched_bytes_total")
                            .Help("KV bytes pulled from shards with FetchKV, by tenant")
                            .Register(registry)),
      kv_fetch_seconds_(prometheus::BuildHistogram()
                            .Name("semshare_worker_kv_fetch_seconds")
                            .Help("Duration of each FetchKV transfer")
                            .Register(registry)
                            .Add({}, FineSecondsBuckets())),
      local_cache_bytes_(UnlabelledGauge(registry, "semshare_worker_local_cache_bytes",
                                         "KV bytes held by the local reference cache")),
      local_cache_references_(UnlabelledGauge(registry, "semshare_worker_local_cache_references",
                                              "References held by the local reference cache")),
      local_cache_hits_(
          UnlabelledCounter(registry, "semshare_worker_local_cache_hits_total",
                            "Hits served from the local reference cache, without a transfer")),
      stores_(prometheus::BuildCounter()
                  .Name("semshare_worker_stores_total")
                  .Help("New references for the shards, by result (stored, dropped, failed)")
                  .Register(registry)),
      rpcs_(registry, "semshare_worker") {}

void WorkerMetrics::RecordRequest(const std::string& tenant, absl::string_view outcome) {
  requests_.Add({{"tenant", tenant}, {"outcome", std::string(outcome)}}).Increment();
}

void WorkerMetrics::RecordRejected() { rejected_.Increment(); }

void WorkerMetrics::SetLoad(int32_t in_flight, int32_t queued, int64_t kv_reserved_bytes,
                            int64_t kv_budget_bytes) {
  in_flight_.Set(in_flight);
  queue_depth_.Set(queued);
  kv_reserved_bytes_.Set(static_cast<double>(kv_reserved_bytes));
  kv_budget_bytes_.Set(static_cast<double>(kv_budget_bytes));
}

void WorkerMetrics::RecordDecodeStep(int32_t batch_size) { decode_batch_size_.Observe(batch_size); }

void WorkerMetrics::RecordQueueWait(double seconds) { queue_seconds_.Observe(seconds); }

void WorkerMetrics::RecordFetch(const std::string& tenant, int64_t bytes, double seconds) {
  kv_fetched_bytes_.Add({{"tenant", tenant}}).Increment(static_cast<double>(bytes));
  kv_fetch_seconds_.Observe(seconds);
}

void WorkerMetrics::RecordLocalCacheHit() { local_cache_hits_.Increment(); }

void WorkerMetrics::SetLocalCache(int64_t bytes, int64_t references) {
  local_cache_bytes_.Set(static_cast<double>(bytes));
  local_cache_references_.Set(static_cast<double>(references));
}

void WorkerMetrics::RecordStore(absl::string_view result) {
  stores_.Add({{"result", std::string(result)}}).Increment();
}

void WorkerMetrics::RecordRpc(absl::string_view method, absl::string_view code, double seconds) {
  rpcs_.Record(method, code, seconds);
}

}  // namespace semshare::worker
