#ifndef SEMSHARE_ROUTER_SERVICE_ROUTER_H_
#define SEMSHARE_ROUTER_SERVICE_ROUTER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "router/service/router_metrics.h"
#include "router/service/shard_search.h"
#include "router/service/target_encoder.h"
#include "router/service/worker_pool.h"
#include "semshare/v1/router.pb.h"

// One request through the cluster (DESIGN.md, "The cluster"): encode the prompt, search every
// shard, choose a reference and a worker, call it (once more on another worker if it fails),
// and account the stages. A shard that fails costs a miss; a worker that fails costs a retry.
namespace semshare::router {

struct RouterOptions {
  double similarity_threshold = 0.8;  // default when a request sets none
  // false: no search and no new references, every request a full prefill (the baseline that
  // `semshare-bench serve` compares against).
  bool reuse = true;
  int32_t default_max_tokens = 64;  // when a request asks for 0
  int32_t max_tokens_limit = 4096;  // a request asking for more is refused (InvalidArgument)
  // Each tenant's byte budget on each cache node (the API keys file's BYTE_BUDGET), passed with
  // every new reference; a tenant not listed, or 0: only the nodes' own budgets.
  absl::flat_hash_map<std::string, int64_t> tenant_byte_budgets;

  absl::Status Validate() const;
};

// Thread-safe. The parts must outlive the router.
class Router {
 public:
  // `metrics` may be null (nothing recorded); otherwise it must outlive the router too.
  static absl::StatusOr<std::unique_ptr<Router>> Create(const TargetEncoder* encoder,
                                                        ShardSearch* shards, WorkerPool* workers,
                                                        const RouterOptions& options,
                                                        RouterMetrics* metrics = nullptr);

  // Streams token chunks to `on_tokens` (false: the client went away) and returns the stats.
  // Every call is counted once in the metrics, whichever front made it.
  absl::StatusOr<v1::GenerateStats> Generate(
      const std::string& tenant, const v1::GenerateRequest& request,
      const std::function<bool(const v1::TokenChunk&)>& on_tokens);

  // The tenant's counters, the shards' health and the workers' load.
  v1::RouterStats Stats(const std::string& tenant);

  // For the fronts' own call counts (RouterMetrics::RecordRpc); null when there are none.
  RouterMetrics* metrics() const { return metrics_; }

 private:
  struct Counters {
    int64_t requests = 0;
    int64_t hits = 0;
    int64_t misses = 0;
    int64_t failures = 0;
  };

  Router(const TargetEncoder* encoder, ShardSearch* shards, WorkerPool* workers,
         const RouterOptions& options, RouterMetrics* metrics)
      : encoder_(encoder),
        shards_(shards),
        workers_(workers),
        options_(options),
        metrics_(metrics) {}

  // `best_similarity` is set when the shards offered a candidate.
  absl::StatusOr<v1::GenerateStats> Serve(
      const std::string& tenant, const v1::GenerateRequest& request,
      const std::function<bool(const v1::TokenChunk&)>& on_tokens,
      std::optional<double>* best_similarity);
  void RecordShardViews();
  std::string NewReferenceId();
  // The request's max_tokens, or the router's default when it gives none (0).
  int32_t EffectiveMaxTokens(const v1::GenerateRequest& request) const {
    return request.max_tokens() > 0 ? request.max_tokens() : options_.default_max_tokens;
  }

  const TargetEncoder* const encoder_;
  ShardSearch* const shards_;
  WorkerPool* const workers_;
  const RouterOptions options_;
  RouterMetrics* const metrics_;
  absl::Mutex mutex_;
  absl::BitGen random_ ABSL_GUARDED_BY(mutex_);
  absl::flat_hash_map<std::string, Counters> counters_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace semshare::router

#endif  // SEMSHARE_ROUTER_SERVICE_ROUTER_H_
