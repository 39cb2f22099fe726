#include "router/service/router_metrics.h"

#include <utility>

namespace semshare::router {
namespace {

// 0.05, 0.10, ..., 1.0: similarities and shares.
prometheus::Histogram::BucketBoundaries ShareBuckets() {
  prometheus::Histogram::BucketBoundaries buckets;
  for (int i = 1; i <= 20; ++i) buckets.push_back(i / 20.0);
  return buckets;
}

prometheus::Histogram& UnlabelledHistogram(prometheus::Registry& registry, const std::string& name,
                                           const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add({},
                                                                                   ShareBuckets());
}

}  // namespace

std::string RequestOutcome(const absl::StatusOr<v1::GenerateStats>& stats) {
  if (!stats.ok()) return "error";
  if (stats->cache_hit()) return "hit";
  if (stats->bypassed()) return "bypass";
  return "miss";
}

RouterMetrics::RouterMetrics(prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name("semshare_router_requests_total")
                    .Help("Generate requests, by tenant and outcome (hit, miss, bypass, error)")
                    .Register(registry)),
      ttft_(prometheus::BuildHistogram()
                .Name("semshare_router_ttft_seconds")
                .Help("Time to first token, by outcome")
                .Register(registry)),
      duration_(prometheus::BuildHistogram()
                    .Name("semshare_router_request_duration_seconds")
                    .Help("End-to-end request latency, by outcome")
                    .Register(registry)),
      similarity_(
          UnlabelledHistogram(registry, "semshare_router_similarity",
                              "Best reference similarity of requests that had a candidate")),
      recompute_share_(UnlabelledHistogram(registry, "semshare_router_recompute_share",
                                           "Share of token-layers recomputed, hits only")),
      kv_kept_share_(UnlabelledHistogram(registry, "semshare_router_kv_kept_share",
                                         "Share of token-layers kept after retention, hits only")),
      stage_(prometheus::BuildHistogram()
                 .Name("semshare_router_stage_seconds")
                 .Help("Time of each stage of served requests (tokenize, search, fetch, recompute, "
                       "decode)")
                 .Register(registry)),
      in_flight_(UnlabelledGauge(registry, "semshare_router_in_flight_requests",
                                 "Generate requests being served")),
      worker_retries_(UnlabelledCounter(registry, "semshare_router_worker_retries_total",
                                        "Requests retried on another worker")),
      shard_up_(prometheus::BuildGauge()
                    .Name("semshare_router_shard_up")
                    .Help("1 when the router's last call to the shard succeeded")
                    .Register(registry)),
      worker_up_(prometheus::BuildGauge()
                     .Name("semshare_router_worker_up")
                     .Help("1 when the router's last call to the worker succeeded")
                     .Register(registry)),
      rpcs_(registry, "semshare_router") {}

void RouterMetrics::RecordRequest(const std::string& tenant,
                                  const absl::StatusOr<v1::GenerateStats>& stats,
                                  std::optional<double> best_similarity) {
  const std::string outcome = RequestOutcome(stats);
  requests_.Add({{"tenant", tenant}, {"outcome", outcome}}).Increment();
  if (best_similarity.has_value()) similarity_.Observe(*best_similarity);
  if (!stats.ok()) return;
  ttft_.Add({{"outcome", outcome}}, RequestSecondsBuckets()).Observe(stats->ttft_ms() / 1e3);
  duration_.Add({{"outcome", outcome}}, RequestSecondsBuckets()).Observe(stats->latency_ms() / 1e3);
  if (stats->cache_hit()) {
    recompute_share_.Observe(stats->recompute_share());
    kv_kept_share_.Observe(stats->kv_kept_share());
  }
  const v1::StageTimes& stages = stats->stages();
  for (const auto& [stage, ms] :
       {std::pair{"tokenize", stages.tokenize_ms()}, std::pair{"search", stages.search_ms()},
        std::pair{"queue", stages.queue_ms()}, std::pair{"fetch", stages.fetch_ms()},
        std::pair{"recompute", stages.recompute_ms()}, std::pair{"decode", stages.decode_ms()}}) {
    stage_.Add({{"stage", stage}, {"outcome", outcome}}, FineSecondsBuckets()).Observe(ms / 1e3);
  }
}

void RouterMetrics::RequestStarted() { in_flight_.Increment(); }

void RouterMetrics::RequestEnded() { in_flight_.Decrement(); }

void RouterMetrics::RecordWorkerRetry() { worker_retries_.Increment(); }

void RouterMetrics::SetShardUp(const std::string& shard, bool up) {
  shard_up_.Add({{"shard", shard}}).Set(up ? 1 : 0);
}

void RouterMetrics::SetWorkerUp(const std::string& worker, bool up) {
  worker_up_.Add({{"worker", worker}}).Set(up ? 1 : 0);
}

void RouterMetrics::RecordRpc(absl::string_view method, absl::string_view code, double seconds) {
  rpcs_.Record(method, code, seconds);
}

}  // namespace semshare::router
