#include "inference_worker/service/scheduler.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace semshare::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// What the fakes saw, in order: the scheduler runs them on its own thread.
struct Log {
  absl::Mutex mutex;
  std::vector<std::string> completed;  // names, in completion order
  int32_t max_running = 0;
  int32_t running = 0;
  int32_t max_batch = 0;
  int32_t decode_steps = 0;
};

// A request that takes `prefill_pieces` prefill pieces, then `tokens` decode steps; it throws
// or fails where told.
class FakeRequest final : public ScheduledRequest {
 public:
  FakeRequest(std::string name, std::string tenant, Log* log, int64_t peak_kv = 10,
              int32_t prefill_pieces = 2, int32_t tokens = 3)
      : name_(std::move(name)),
        tenant_(std::move(tenant)),
        log_(log),
        peak_kv_(peak_kv),
        remaining_kv_(peak_kv),
        prefill_left_(prefill_pieces),
        tokens_left_(tokens) {}

  const std::string& tenant() const override { return tenant_; }
  int64_t peak_kv_bytes() const override { return peak_kv_; }
  absl::Status Start() override {
    absl::MutexLock lock(&log_->mutex);
    log_->max_running = std::max(log_->max_running, ++log_->running);
    return absl::OkStatus();
  }
  bool PrefillReady() override { return ready_; }
  absl::Status StepPrefill() override {
    if (throw_bad_alloc_in_prefill) throw std::bad_alloc();
    if (throw_in_prefill) throw std::runtime_error("the engine broke in prefill");
    --prefill_left_;
    return absl::OkStatus();
  }
  bool decoding() const override { return prefill_left_ <= 0; }
  int64_t remaining_kv_bytes() const override { return remaining_kv_; }
  bool finished() const override { return tokens_left_ <= 0; }
  bool cancelled() const override { return cancelled_; }
  void Complete(absl::Status status) override {
    {
      absl::MutexLock lock(&log_->mutex);
      --log_->running;
      log_->completed.push_back(name_);
    }
    status_ = std::move(status);
    done_.Notify();
  }

  void Decode() { --tokens_left_; }
  void Cancel() { cancelled_ = true; }
  void set_ready(bool ready) { ready_ = ready; }
  void set_remaining_kv(int64_t bytes) { remaining_kv_ = bytes; }
  const absl::Status& Wait() {
    done_.WaitForNotification();
    return status_;
  }

  bool throw_in_prefill = false;
  bool throw_bad_alloc_in_prefill = false;

 private:
  const std::string name_;
  const std::string tenant_;
  Log* const log_;
  const int64_t peak_kv_;
  std::atomic<int64_t> remaining_kv_;
  std::atomic<bool> ready_{true};
  std::atomic<bool> cancelled_{false};
  int32_t prefill_left_;
  int32_t tokens_left_;
  absl::Status status_;
  absl::Notification done_;
};

// Steps every fake of the batch; throws when `throw_in_decode` is set.
BatchDecodeFn FakeDecode(Log* log, std::atomic<bool>* throw_in_decode = nullptr) {
  return [log, throw_in_decode](absl::Span<ScheduledRequest* const> batch) -> absl::Status {
    {
      absl::MutexLock lock(&log->mutex);
      log->max_batch = std::max(log->max_batch, static_cast<int32_t>(batch.size()));
      ++log->decode_steps;
    }
    if (throw_in_decode != nullptr && *throw_in_decode)
      throw std::runtime_error("the engine broke in decode");
    for (ScheduledRequest* request : batch) static_cast<FakeRequest*>(request)->Decode();
    return absl::OkStatus();
  };
}

SchedulerOptions Options(int32_t max_batch, int64_t kv_budget, int32_t max_queue = 64) {
  SchedulerOptions options;
  options.max_batch = max_batch;
  options.kv_budget_bytes = kv_budget;
  options.max_queue = max_queue;
  return options;
}

// Waits until `running` requests have been admitted.
void WaitForRunning(const Scheduler& scheduler, int32_t running) {
  for (int i = 0; i < 2000; ++i) {
    if (scheduler.Load().running == running) return;
    absl::SleepFor(absl::Milliseconds(1));
  }
  ADD_FAILURE() << "never " << running << " running";
}

// Waits until the scheduler's reservation and running count are back to zero.
void WaitForIdle(const Scheduler& scheduler) {
  for (int i = 0; i < 2000; ++i) {
    const SchedulerLoad load = scheduler.Load();
    if (load.running == 0 && load.queued == 0 && load.kv_reserved_bytes == 0) return;
    absl::SleepFor(absl::Milliseconds(1));
  }
  ADD_FAILURE() << "the scheduler never went idle";
}

TEST(SchedulerTest, DecodesEveryRunningRequestInOneBatchUpToMaxBatch) {
  Log log;
  std::vector<std::shared_ptr<FakeRequest>> requests;
  requests.reserve(20);
  for (int i = 0; i < 20; ++i)
    requests.push_back(std::make_shared<FakeRequest>("r" + std::to_string(i), "t", &log, 10,
                                                     /*prefill_pieces=*/1, /*tokens=*/10));
  {
    Scheduler scheduler(Options(4, 1000), FakeDecode(&log));
    for (auto& r : requests) ASSERT_TRUE(scheduler.Submit(r).ok());
    for (auto& r : requests) EXPECT_TRUE(r->Wait().ok());
    WaitForIdle(scheduler);
  }
  EXPECT_EQ(log.max_running, 4);
  EXPECT_EQ(log.max_batch, 4);
  // 20 requests of 10 tokens in batches of at most 4: far fewer steps than one at a time (200).
  EXPECT_LT(log.decode_steps, 100);
}

TEST(SchedulerTest, AdmitsByKvBudgetAndShrinksTheReservationAfterPrefill) {
  Log log;
  // Each needs 60 of 100 at its peak and 30 once decoding: two run at once only after the
  // first has finished its prefill.
  auto a = std::make_shared<FakeRequest>("a", "t", &log, 60, 2, 50);
  auto b = std::make_shared<FakeRequest>("b", "t", &log, 60, 2, 3);
  a->set_remaining_kv(30);
  b->set_remaining_kv(30);
  Scheduler scheduler(Options(16, 100), FakeDecode(&log));
  ASSERT_TRUE(scheduler.Submit(a).ok());
  ASSERT_TRUE(scheduler.Submit(b).ok());
  EXPECT_TRUE(b->Wait().ok());
  EXPECT_TRUE(a->Wait().ok());
  WaitForIdle(scheduler);
  EXPECT_EQ(log.max_running, 2);                      // b ran while a was decoding
  EXPECT_THAT(log.completed, ElementsAre("b", "a"));  // and finished first

  // One that could never fit is refused at once, with the flag to change.
  auto huge = std::make_shared<FakeRequest>("huge", "t", &log, 101);
  const absl::Status refused = scheduler.Submit(huge);
  EXPECT_TRUE(absl::IsResourceExhausted(refused));
  EXPECT_THAT(refused.message(), HasSubstr("--kv-budget-bytes"));
}

TEST(SchedulerTest, TenantsTakeTurnsSoAFloodDoesNotStarveAnotherTenant) {
  Log log;
  std::vector<std::shared_ptr<FakeRequest>> flood;
  std::vector<std::shared_ptr<FakeRequest>> light;
  auto blocker = std::make_shared<FakeRequest>("blocker", "flood", &log);
  blocker->set_ready(false);  // holds the one slot until every request below is queued
  Scheduler scheduler(Options(1, 1000), FakeDecode(&log));
  ASSERT_TRUE(scheduler.Submit(blocker).ok());
  WaitForRunning(scheduler, 1);
  for (int i = 0; i < 20; ++i) {
    flood.push_back(std::make_shared<FakeRequest>("f" + std::to_string(i), "flood", &log));
    ASSERT_TRUE(scheduler.Submit(flood.back()).ok());
    if (i % 10 == 9) {
      light.push_back(std::make_shared<FakeRequest>("l" + std::to_string(i / 10), "light", &log));
      ASSERT_TRUE(scheduler.Submit(light.back()).ok());
    }
  }
  blocker->set_ready(true);
  scheduler.Wake();
  for (auto& r : flood) EXPECT_TRUE(r->Wait().ok());
  for (auto& r : light) EXPECT_TRUE(r->Wait().ok());
  // With one slot, the light tenant's requests go second and fourth, not after the flood's 20.
  ASSERT_EQ(log.completed.size(), 23u);
  EXPECT_EQ(log.completed[0], "blocker");
  EXPECT_EQ(log.completed[2], "l0");
  EXPECT_EQ(log.completed[4], "l1");
}

TEST(SchedulerTest, PastThePerTenantQueueLimitIsResourceExhausted) {
  Log log;
  auto running = std::make_shared<FakeRequest>("running", "a", &log);
  running->set_ready(false);
  Scheduler scheduler(Options(1, 1000, /*max_queue=*/1), FakeDecode(&log));
  ASSERT_TRUE(scheduler.Submit(running).ok());  // starts at once: not counted as waiting
  WaitForRunning(scheduler, 1);
  auto waiting = std::make_shared<FakeRequest>("waiting", "a", &log);
  ASSERT_TRUE(scheduler.Submit(waiting).ok());
  EXPECT_TRUE(
      absl::IsResourceExhausted(scheduler.Submit(std::make_shared<FakeRequest>("x", "a", &log))));
  // Another tenant has a queue of its own.
  auto other = std::make_shared<FakeRequest>("other", "b", &log);
  EXPECT_TRUE(scheduler.Submit(other).ok());
  running->set_ready(true);
  scheduler.Wake();
  EXPECT_TRUE(waiting->Wait().ok());
  EXPECT_TRUE(other->Wait().ok());
}

TEST(SchedulerTest, ExceptionsFailOnlyTheirRequestAndFreeItsKv) {
  Log log;
  Scheduler scheduler(Options(16, 100), FakeDecode(&log));
  auto broken = std::make_shared<FakeRequest>("broken", "t", &log, 90);
  broken->throw_in_prefill = true;
  ASSERT_TRUE(scheduler.Submit(broken).ok());
  const absl::Status failed = broken->Wait();
  EXPECT_TRUE(absl::IsInternal(failed));
  EXPECT_THAT(failed.message(), HasSubstr("the engine broke in prefill"));

  auto oom = std::make_shared<FakeRequest>("oom", "t", &log, 90);
  oom->throw_bad_alloc_in_prefill = true;
  ASSERT_TRUE(scheduler.Submit(oom).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(oom->Wait()));
  WaitForIdle(scheduler);

  // The budget came back whole: a request needing 90 of it runs.
  auto next = std::make_shared<FakeRequest>("next", "t", &log, 90);
  ASSERT_TRUE(scheduler.Submit(next).ok());
  EXPECT_TRUE(next->Wait().ok());
}

TEST(SchedulerTest, AThrowingDecodeStepFailsItsBatchAndTheNextRequestsAreServed) {
  Log log;
  std::atomic<bool> throw_in_decode{true};
  Scheduler scheduler(Options(16, 100), FakeDecode(&log, &throw_in_decode));
  auto a = std::make_shared<FakeRequest>("a", "t", &log, 50);
  auto b = std::make_shared<FakeRequest>("b", "t", &log, 50);
  ASSERT_TRUE(scheduler.Submit(a).ok());
  ASSERT_TRUE(scheduler.Submit(b).ok());
  EXPECT_THAT(a->Wait().message(), HasSubstr("the engine broke in decode"));
  EXPECT_TRUE(absl::IsInternal(b->Wait()));
  WaitForIdle(scheduler);
  throw_in_decode = false;
  auto c = std::make_shared<FakeRequest>("c", "t", &log, 100);
  ASSERT_TRUE(scheduler.Submit(c).ok());
  EXPECT_TRUE(c->Wait().ok());
}

TEST(SchedulerTest, CancelledRequestsLeaveAtOnceAndFreeTheirKv) {
  Log log;
  Scheduler scheduler(Options(1, 100), FakeDecode(&log));
  auto stuck = std::make_shared<FakeRequest>("stuck", "t", &log, 100);
  stuck->set_ready(false);  // waits for KV that never comes
  auto queued = std::make_shared<FakeRequest>("queued", "t", &log, 100);
  ASSERT_TRUE(scheduler.Submit(stuck).ok());
  ASSERT_TRUE(scheduler.Submit(queued).ok());
  queued->Cancel();
  scheduler.Wake();
  EXPECT_TRUE(absl::IsCancelled(queued->Wait()));
  stuck->Cancel();
  scheduler.Wake();
  EXPECT_TRUE(absl::IsCancelled(stuck->Wait()));
  WaitForIdle(scheduler);
  auto next = std::make_shared<FakeRequest>("next", "t", &log, 100);
  ASSERT_TRUE(scheduler.Submit(next).ok());
  EXPECT_TRUE(next->Wait().ok());
}

TEST(SchedulerTest, StoppingEndsQueuedAndRunningRequestsAsUnavailable) {
  Log log;
  auto running = std::make_shared<FakeRequest>("running", "t", &log);
  running->set_ready(false);
  auto queued = std::make_shared<FakeRequest>("queued", "t", &log);
  {
    Scheduler scheduler(Options(1, 1000), FakeDecode(&log));
    ASSERT_TRUE(scheduler.Submit(running).ok());
    ASSERT_TRUE(scheduler.Submit(queued).ok());
  }
  EXPECT_TRUE(absl::IsUnavailable(running->Wait()));
  EXPECT_TRUE(absl::IsUnavailable(queued->Wait()));
}

TEST(SchedulerOptionsTest, BadOptionsAreRefused) {
  EXPECT_TRUE(Options(1, 1).Validate().ok());
  EXPECT_FALSE(Options(0, 1).Validate().ok());
  EXPECT_FALSE(Options(1, 0).Validate().ok());
  EXPECT_FALSE(Options(1, 1, -1).Validate().ok());
}

}  // namespace
}  // namespace semshare::worker
