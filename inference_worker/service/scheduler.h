#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_SCHEDULER_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

// The worker's iteration-level scheduler (DESIGN.md, "Serving under load"), as vLLM and SGLang
// schedule: each iteration advances every decoding request by one token in one batched step,
// then runs one bounded piece of prefill work, so a long prefill stalls running decodes by one
// piece at most. Requests are admitted when their KV fits the budget, taken round-robin across
// tenants. No libtorch and no gRPC here: what a request is lives behind ScheduledRequest.
namespace semshare::worker {

struct SchedulerOptions {
  int32_t max_batch = 16;       // requests running (prefilling or decoding) at once
  int32_t max_queue = 64;       // requests waiting per tenant; past it ResourceExhausted
  int64_t kv_budget_bytes = 0;  // KV reserved by running requests; must be > 0

  absl::Status Validate() const;
};

// One request as the scheduler drives it, on the scheduler's thread only (but cancelled(),
// which any thread may flip). Exceptions thrown by a request's methods fail that request.
class ScheduledRequest {
 public:
  virtual ~ScheduledRequest() = default;
  virtual const std::string& tenant() const = 0;
  // The most KV it can hold while it runs (its prefill's peak, with room for max_tokens).
  virtual int64_t peak_kv_bytes() const = 0;
  // Called once when admitted (e.g. starts a transfer).
  virtual absl::Status Start() = 0;
  // Whether the next prefill piece would run without waiting (for KV still in transfer).
  virtual bool PrefillReady() = 0;
  // Runs one prefill piece; after the last one the request is decoding.
  virtual absl::Status StepPrefill() = 0;
  virtual bool decoding() const = 0;
  // Once decoding: the most KV it can hold from now on (what the reservation shrinks to).
  virtual int64_t remaining_kv_bytes() const = 0;
  virtual bool finished() const = 0;  // no more tokens to make
  virtual bool cancelled() const = 0;
  // Called once when the request leaves the scheduler: OK when finished, else why it ended.
  // Its KV is freed then.
  virtual void Complete(absl::Status status) = 0;
};

// Advances every request of `batch` (each decoding, none finished) by one token together.
// An error ends every request of the batch.
using BatchDecodeFn = std::function<absl::Status(absl::Span<ScheduledRequest* const> batch)>;

struct SchedulerLoad {
  int32_t running = 0;   // admitted: prefilling or decoding
  int32_t decoding = 0;  // in the decode batch
  int32_t queued = 0;
  int64_t kv_reserved_bytes = 0;
  int64_t kv_budget_bytes = 0;
  int32_t max_batch = 0;
};

// Waiting requests, taken round-robin across tenants: one tenant's flood waits behind itself.
// Not thread-safe.
class FairQueue {
 public:
  bool empty() const { return size_ == 0; }
  int32_t size() const { return size_; }
  int32_t size_of(const std::string& tenant) const;
  void Push(std::shared_ptr<ScheduledRequest> request);
  // The request Pop would return; the queue must not be empty.
  ScheduledRequest* Peek() const;
  std::shared_ptr<ScheduledRequest> Pop();
  // Removes and returns every request for which `drop` holds.
  std::vector<std::shared_ptr<ScheduledRequest>> RemoveIf(
      const std::function<bool(const ScheduledRequest&)>& drop);

 private:
  absl::flat_hash_map<std::string, std::deque<std::shared_ptr<ScheduledRequest>>> by_tenant_;
  std::deque<std::string> turns_;  // tenants with waiting requests, the next to go first
  int32_t size_ = 0;
};

// Observes the scheduler's iterations (metrics); may be empty.
struct SchedulerObserver {
  std::function<void(const SchedulerLoad&)> on_load;
  std::function<void(int32_t batch_size)> on_decode_step;
};

// Thread-safe. Runs its loop on its own thread.
class Scheduler {
 public:
  Scheduler(const SchedulerOptions& options, BatchDecodeFn decode, SchedulerObserver observer = {});
  // Ends every queued and running request with Unavailable.
  ~Scheduler();

  // Queues a request; ResourceExhausted when its tenant's queue is full or it could never fit
  // the KV budget. The request is completed (Complete) exactly once after an OK.
  absl::Status Submit(std::shared_ptr<ScheduledRequest> request);
  // Something changed outside the loop (a layer arrived, a request was cancelled).
  void Wake();
  SchedulerLoad Load() const;

 private:
  struct Running {
    std::shared_ptr<ScheduledRequest> request;
    int64_t reserved = 0;
  };

  void Loop();
  // One iteration; false when there was nothing to do.
  bool Iterate();
  void Admit() ABSL_LOCKS_EXCLUDED(mutex_);
  // Completes running_[i] with `status`, frees its KV and removes it.
  void Retire(size_t i, absl::Status status);
  void Reserve(Running& running, int64_t bytes);
  void RecordLoad();
  SchedulerLoad LoadLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const SchedulerOptions options_;
  const BatchDecodeFn decode_;
  const SchedulerObserver observer_;

  // Touched by the loop thread only.
  std::vector<Running> running_;
  size_t next_prefill_ = 0;  // round-robin over prefilling requests

  mutable absl::Mutex mutex_;
  FairQueue queue_ ABSL_GUARDED_BY(mutex_);
  int64_t reserved_ ABSL_GUARDED_BY(mutex_) = 0;
  int32_t running_count_ ABSL_GUARDED_BY(mutex_) = 0;
  int32_t decoding_count_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t wakes_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_SCHEDULER_H_
