#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_STORE_QUEUE_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_STORE_QUEUE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "inference_worker/service/local_reference_cache.h"
#include "inference_worker/service/reference_source.h"
#include "inference_worker/service/worker_metrics.h"

namespace semshare {
class Engine;
struct Reference;
struct ECacheOptions;
}  // namespace semshare

namespace semshare::worker {

// Where a miss stores its prompt as a new reference.
struct StorePlacement {
  std::string shard;
  std::string reference_id;
  int64_t tenant_byte_budget = 0;  // the tenant's bytes on that shard; 0: the shard's own budgets
};

struct StoreQueueOptions {
  int32_t max_pending = 16;  // stores waiting; past it a new one is dropped
  // KV of misses kept for their stores; past it a store recomputes its prompt's KV instead.
  int64_t max_pending_bytes = int64_t{1} << 30;
};

struct StoreCounts {
  int64_t done = 0;
  int64_t failed = 0;
  int64_t dropped = 0;  // the queue was full
  int32_t pending = 0;  // queued or being stored
};

// Stores new references on their shards on a background thread, after the miss's reply; the
// worker that made a reference then holds all of it in its local cache. Thread-safe.
class StoreQueue {
 public:
  // Everything given must outlive the queue (`metrics` may be null).
  StoreQueue(const Engine* engine, const ECacheOptions& ecache, ReferenceSource* source,
             LocalReferenceCache* local, std::string fingerprint, const StoreQueueOptions& options,
             WorkerMetrics* metrics);
  // Finishes the stores already queued.
  ~StoreQueue();

  // Queues a store of `prompt`; `reference` is its KV made while serving the miss (null: the
  // store recomputes it). Dropped (counted) when the queue is full.
  void Enqueue(std::string tenant, std::vector<int32_t> prompt, StorePlacement placement,
               std::shared_ptr<Reference> reference);
  // Blocks until every queued store has been attempted.
  void WaitIdle();
  StoreCounts counts() const;

 private:
  struct Pending {
    std::string tenant;
    std::vector<int32_t> prompt;
    StorePlacement placement;
    std::shared_ptr<Reference> reference;
    int64_t bytes = 0;
  };

  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return stopping_ || !pending_.empty();
  }
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { return pending_.empty() && !storing_; }
  void Loop();
  absl::Status Store(Pending store);

  const Engine* engine_;
  const std::unique_ptr<const ECacheOptions> ecache_;
  ReferenceSource* source_;
  LocalReferenceCache* local_;
  const std::string fingerprint_;
  const StoreQueueOptions options_;
  WorkerMetrics* metrics_;

  mutable absl::Mutex mutex_;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mutex_);
  int64_t pending_bytes_ ABSL_GUARDED_BY(mutex_) = 0;
  bool storing_ ABSL_GUARDED_BY(mutex_) = false;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  StoreCounts counts_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;
};

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_STORE_QUEUE_H_
