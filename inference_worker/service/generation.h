#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_GENERATION_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_GENERATION_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "inference_worker/engine/decode.h"
#include "inference_worker/engine/prefill_task.h"
#include "inference_worker/engine/sampler.h"
#include "inference_worker/service/reuse_decision.h"
#include "inference_worker/service/scheduler.h"
#include "inference_worker/service/streamed_fetch.h"
#include "inference_worker/service/worker.h"

// One generate request on the engine, as the scheduler drives it: a hit's gathered recompute
// (from the local cache or a streamed fetch) or a full prefill, in pieces; then decoding in
// the batch. Tokens go to the caller's thread through a TokenChannel.
namespace semshare::worker {

// From the scheduler's thread to the thread that called Generate: tokens as they are chosen,
// then the reply (or why the request ended). Thread-safe.
class TokenChannel {
 public:
  void Push(int32_t token);
  void Close(absl::StatusOr<WorkerReply> reply);
  // Waits for tokens or the end; moves the tokens waiting into `tokens`, and the end, once it
  // has come and every token before it was taken, into `end`.
  void Take(std::vector<int32_t>* tokens, std::optional<absl::StatusOr<WorkerReply>>* end);

 private:
  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return !tokens_.empty() || end_.has_value();
  }
  absl::Mutex mutex_;
  std::deque<int32_t> tokens_ ABSL_GUARDED_BY(mutex_);
  std::optional<absl::StatusOr<WorkerReply>> end_ ABSL_GUARDED_BY(mutex_);
};

// What every generation of a worker shares; all of it outlives them.
struct GenerationContext {
  const Engine* engine = nullptr;
  const ReuseOptions* reuse = nullptr;
  const WorkerOptions* options = nullptr;
  ReferenceSource* source = nullptr;
  LocalReferenceCache* local = nullptr;
  StoreQueue* stores = nullptr;
  WorkerMetrics* metrics = nullptr;  // may be null
  std::function<void()> wake;        // the scheduler's Wake
};

class Generation final : public ScheduledRequest {
 public:
  // `request` has been checked (tenant, prompt, sampling) and `decision` made.
  Generation(const GenerationContext& context, WorkerRequest request, ReuseDecision decision,
             SamplingOptions sampling, SteadyClock::time_point received,
             std::shared_ptr<TokenChannel> channel);
  ~Generation() override;

  // Any thread: the caller went away.
  void Cancel() { cancelled_ = true; }
  // Any thread: a stop string appeared in the text; the request ends as finished at the
  // scheduler's next iteration (tokens chosen meanwhile are the caller's to drop).
  void StopDecoding() { stop_requested_ = true; }

  const std::string& tenant() const override { return request_.tenant; }
  int64_t peak_kv_bytes() const override { return peak_kv_bytes_; }
  absl::Status Start() override;
  bool PrefillReady() override;
  absl::Status StepPrefill() override;
  bool decoding() const override { return sequence_ != nullptr; }
  int64_t remaining_kv_bytes() const override { return remaining_kv_bytes_; }
  bool finished() const override {
    return sequence_ != nullptr && (sequence_->finished || stop_requested_);
  }
  bool cancelled() const override { return cancelled_; }
  void Complete(absl::Status status) override;

  // The scheduler's BatchDecodeFn for generations of `engine`.
  static absl::Status DecodeBatch(const Engine& engine, absl::Span<ScheduledRequest* const> batch);

 private:
  absl::Status StartMiss();
  // A hit that failed before its first token: served as a miss, with the reason.
  absl::Status FallBackToMiss(const absl::Status& why);
  absl::Status StartDecoding();
  void EmitNewTokens();
  LocalReferenceKey ReferenceKey() const;

  const GenerationContext context_;
  const WorkerRequest request_;
  const ReuseDecision decision_;
  const SamplingOptions sampling_;
  const SteadyClock::time_point received_;
  const std::shared_ptr<TokenChannel> channel_;
  const int64_t bytes_per_token_;  // K and V of one token in every layer
  const int64_t peak_kv_bytes_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> stop_requested_{false};

  SteadyClock::time_point admitted_;
  bool reusing_ = false;                              // a hit in progress
  std::unique_ptr<GatheredLayerSource> held_layers_;  // from the local cache
  std::unique_ptr<StreamedFetch> fetch_;
  std::unique_ptr<PrefillTask> task_;
  std::unique_ptr<DecodeSequence> sequence_;
  size_t emitted_ = 0;
  int64_t remaining_kv_bytes_ = 0;
  WorkerReply reply_;  // filled as the request goes
};

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_GENERATION_H_
