#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_WORKER_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_WORKER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/token_mapping.h"
#include "inference_worker/service/byte_lru.h"
#include "inference_worker/service/reference_source.h"
#include "inference_worker/service/worker_metrics.h"

// The inference worker's domain layer (DESIGN.md, "The cluster"): serves one generate request
// at a time per slot with the engine, reusing a reference's KV fetched from a shard. No gRPC
// and no libtorch types here.
namespace semshare {
class Engine;
struct Reference;
struct ReuseOptions;
}  // namespace semshare

namespace semshare::worker {

struct WorkerOptions {
  int32_t max_concurrent = 1;  // requests executing at once
  int32_t max_queue = 16;      // requests waiting for a slot; past it: ResourceExhausted
  int64_t local_cache_bytes = int64_t{512} << 20;  // references' KV held for repeat hits
  int32_t max_pending_stores = 16;  // new references waiting to be stored; past it: dropped
  // KV of misses kept for their stores; past it a store recomputes its prompt's KV instead.
  int64_t max_pending_store_bytes = int64_t{1} << 30;
  // Recompute layer l while layer l+1 is in transfer; false: the whole transfer first (on a
  // machine whose few cores the transfer and the recompute would share).
  bool overlap_fetch = true;

  absl::Status Validate() const;
};

// The reference a hit reuses, as the router found it.
struct ReuseSource {
  std::string shard;
  std::string reference_id;
  TokenMapping mapping;  // target token i reuses reference token mapping.source[i]
};

// Where a miss stores its prompt as a new reference.
struct StoreTarget {
  std::string shard;
  std::string reference_id;
  int64_t tenant_byte_budget = 0;  // the tenant's bytes on that shard; 0: the shard's own budgets
};

struct Sampling {
  int32_t max_tokens = 64;
  double temperature = 0;  // 0: greedy
  double top_p = 1.0;
  uint64_t seed = 0;
};

struct WorkerRequest {
  std::string tenant;             // from authenticated call metadata, never from the message
  std::string model_fingerprint;  // of the reference's KV; must be the worker's model's
  std::vector<int32_t> prompt;
  Sampling sampling;
  std::optional<ReuseSource> reuse;  // absent: a miss
  std::optional<StoreTarget> store;  // absent: nothing stored
  double similarity_threshold = 0;   // 0: the worker's default
  // Called with each token as soon as it is chosen, and the text it adds (empty while a
  // character is incomplete, or without a tokenizer); may be empty. Returning false ends the
  // request with CANCELLED. The reply's text is the whole, authoritative text.
  std::function<bool(int32_t token, const std::string& text)> on_token;
};

struct WorkerReply {
  std::vector<int32_t> tokens;
  std::string text;  // empty when the model has no tokenizer
  bool cache_hit = false;
  bool local_hit = false;  // the reference's KV came from the local cache: no transfer
  bool bypassed = false;   // the reference was not reused: reuse was predicted not to pay
  std::string bypass_reason;
  std::string reference_id;  // reused (hit) or stored (miss with a store target)
  std::string shard;
  std::string miss_reason;  // why a named reference was not reused
  double similarity = 0;
  double recompute_share = 1;
  double kv_kept_share = 1;
  double ttft_ms = 0;
  double latency_ms = 0;
  int64_t prompt_tokens = 0;
  double fetch_ms =
      0;  // waiting for the reference's KV (transfer overlapped with recompute excluded)
  double recompute_ms = 0;  // prefill or selective recompute, rearrangement and retention
  double decode_ms = 0;
};

struct WorkerLoad {
  std::string model_fingerprint;
  int32_t active_requests = 0;
  int32_t queued_requests = 0;
  int32_t max_concurrency = 0;
  std::vector<std::string> cached_reference_ids;  // most recently used first
  int64_t cached_bytes = 0;
  int64_t stores_done = 0;
  int64_t stores_failed = 0;
  int64_t stores_dropped = 0;  // the store queue was full
  int32_t pending_stores = 0;  // queued or being stored
};

struct HeldReference;  // a reference's KV rows held locally (worker.cc)

// Thread-safe. A hit streams the reference's KV from its shard while recomputing: layer l is
// recomputed while layer l+1 is in transfer. Misses store their prompt as a new reference on a
// background thread, after the reply.
class InferenceWorker {
 public:
  // `engine` and `source` must outlive the worker, and `metrics` too unless it is null (none
  // recorded).
  static absl::StatusOr<std::unique_ptr<InferenceWorker>> Create(const Engine* engine,
                                                                 const ReuseOptions& reuse,
                                                                 ReferenceSource* source,
                                                                 const WorkerOptions& options,
                                                                 WorkerMetrics* metrics = nullptr);
  // Finishes the stores already queued.
  ~InferenceWorker();

  // Waits for a slot (ResourceExhausted at once when the queue is full). A reference that
  // cannot be reused (another model, below the threshold, not found, a broken transfer) makes
  // the request a miss, never a failure; one predicted not to pay (ReuseOptions::bypass) is
  // not fetched and makes it a bypass (served as a miss, nothing stored).
  absl::StatusOr<WorkerReply> Generate(const WorkerRequest& request);

  WorkerLoad Load() const;
  // Blocks until every queued store has been attempted.
  void WaitForStores();
  const std::string& model_fingerprint() const { return fingerprint_; }
  // For the service's call counts; null when there are none.
  WorkerMetrics* metrics() const { return metrics_; }

 private:
  struct PendingStore {
    std::string tenant;
    std::vector<int32_t> prompt;
    StoreTarget target;
    std::shared_ptr<Reference> reference;  // made while serving the miss; null: recompute it
    int64_t bytes = 0;                     // of the reference's KV
  };

  InferenceWorker(const Engine* engine, const ReuseOptions& reuse, ReferenceSource* source,
                  const WorkerOptions& options, WorkerMetrics* metrics);
  // The load and local cache gauges; call after changing them.
  void RecordLoad() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void RecordLocalCache() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::Status Admit();
  void Release();
  bool HasFreeSlot() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return active_ < options_.max_concurrent;
  }
  bool HasStoreWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return stopping_ || !stores_.empty();
  }
  bool StoresIdle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return stores_.empty() && !storing_;
  }
  absl::StatusOr<WorkerReply> Serve(const WorkerRequest& request);
  void StoreLoop();
  absl::Status Store(PendingStore store);

  const Engine* engine_;
  const std::unique_ptr<const ReuseOptions> reuse_;
  ReferenceSource* source_;
  const WorkerOptions options_;
  WorkerMetrics* const metrics_;
  const std::string fingerprint_;

  mutable absl::Mutex mutex_;
  int32_t active_ ABSL_GUARDED_BY(mutex_) = 0;
  int32_t queued_ ABSL_GUARDED_BY(mutex_) = 0;
  ByteLru<std::shared_ptr<const HeldReference>> held_ ABSL_GUARDED_BY(mutex_);
  std::deque<PendingStore> stores_ ABSL_GUARDED_BY(mutex_);
  int64_t pending_store_bytes_ ABSL_GUARDED_BY(mutex_) = 0;
  bool storing_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  int64_t stores_done_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t stores_failed_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t stores_dropped_ ABSL_GUARDED_BY(mutex_) = 0;
  std::thread store_thread_;
};

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_WORKER_H_
