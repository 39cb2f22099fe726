#include "inference_worker/service/scheduler.h"

#include <algorithm>
#include <exception>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace semshare::worker {
namespace {

// How long an idle loop sleeps before it looks again without a wake (a safety net: every
// change that makes work wakes it).
constexpr absl::Duration kIdleRecheck = absl::Milliseconds(100);

// `call`'s status, with an exception it throws as the status.
template <typename Call>
absl::Status Guard(Call&& call) {
  try {
    return call();
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory");
  } catch (const std::exception& e) {
    return absl::InternalError(e.what());
  } catch (...) {
    return absl::InternalError("unknown exception");
  }
}

}  // namespace

absl::Status SchedulerOptions::Validate() const {
  if (max_batch < 1) return absl::InvalidArgumentError("max batch must be >= 1");
  if (max_queue < 0) return absl::InvalidArgumentError("max queue must be >= 0");
  if (kv_budget_bytes <= 0) return absl::InvalidArgumentError("KV budget bytes must be > 0");
  return absl::OkStatus();
}

int32_t FairQueue::size_of(const std::string& tenant) const {
  auto it = by_tenant_.find(tenant);
  return it == by_tenant_.end() ? 0 : static_cast<int32_t>(it->second.size());
}

void FairQueue::Push(std::shared_ptr<ScheduledRequest> request) {
  std::deque<std::shared_ptr<ScheduledRequest>>& line = by_tenant_[request->tenant()];
  if (line.empty()) turns_.push_back(request->tenant());
  line.push_back(std::move(request));
  ++size_;
}

ScheduledRequest* FairQueue::Peek() const { return by_tenant_.at(turns_.front()).front().get(); }

std::shared_ptr<ScheduledRequest> FairQueue::Pop() {
  const std::string tenant = turns_.front();
  turns_.pop_front();
  auto it = by_tenant_.find(tenant);
  std::shared_ptr<ScheduledRequest> request = std::move(it->second.front());
  it->second.pop_front();
  if (it->second.empty()) {
    by_tenant_.erase(it);
  } else {
    turns_.push_back(tenant);  // its next request waits for every other tenant's turn
  }
  --size_;
  return request;
}

std::vector<std::shared_ptr<ScheduledRequest>> FairQueue::RemoveIf(
    const std::function<bool(const ScheduledRequest&)>& drop) {
  std::vector<std::shared_ptr<ScheduledRequest>> removed;
  for (auto it = turns_.begin(); it != turns_.end();) {
    std::deque<std::shared_ptr<ScheduledRequest>>& line = by_tenant_[*it];
    for (auto r = line.begin(); r != line.end();) {
      if (drop(**r)) {
        removed.push_back(std::move(*r));
        r = line.erase(r);
        --size_;
      } else {
        ++r;
      }
    }
    if (line.empty()) {
      by_tenant_.erase(*it);
      it = turns_.erase(it);
    } else {
      ++it;
    }
  }
  return removed;
}

Scheduler::Scheduler(const SchedulerOptions& options, BatchDecodeFn decode,
                     SchedulerObserver observer)
    : options_(options), decode_(std::move(decode)), observer_(std::move(observer)) {
  thread_ = std::thread([this] { Loop(); });
}

Scheduler::~Scheduler() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

absl::Status Scheduler::Submit(std::shared_ptr<ScheduledRequest> request) {
  if (request->peak_kv_bytes() > options_.kv_budget_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the request needs ", request->peak_kv_bytes(), " bytes of KV; the worker's KV budget is ",
        options_.kv_budget_bytes, " (--kv-budget-bytes)"));
  }
  absl::MutexLock lock(&mutex_);
  if (stopping_) return absl::UnavailableError("the worker is shutting down");
  // A request that can start at once never waits, so it does not count against the queue.
  const bool starts_now = queue_.empty() && running_count_ < options_.max_batch &&
                          reserved_ + request->peak_kv_bytes() <= options_.kv_budget_bytes;
  if (!starts_now && queue_.size_of(request->tenant()) >= options_.max_queue) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "worker busy: ", running_count_, " running, ", queue_.size(), " queued (",
        queue_.size_of(request->tenant()), " of this tenant, max ", options_.max_queue, ")"));
  }
  queue_.Push(std::move(request));
  ++wakes_;
  return absl::OkStatus();
}

void Scheduler::Wake() {
  absl::MutexLock lock(&mutex_);
  ++wakes_;
}

SchedulerLoad Scheduler::Load() const {
  absl::MutexLock lock(&mutex_);
  return LoadLocked();
}

SchedulerLoad Scheduler::LoadLocked() const {
  SchedulerLoad load;
  load.running = running_count_;
  load.decoding = decoding_count_;
  load.queued = queue_.size();
  load.kv_reserved_bytes = reserved_;
  load.kv_budget_bytes = options_.kv_budget_bytes;
  load.max_batch = options_.max_batch;
  return load;
}

void Scheduler::Loop() {
  while (true) {
    uint64_t seen = 0;
    {
      absl::MutexLock lock(&mutex_);
      if (stopping_) break;
      seen = wakes_;
    }
    if (Iterate()) continue;
    absl::MutexLock lock(&mutex_);
    auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return stopping_ || wakes_ != seen;
    };
    mutex_.AwaitWithTimeout(absl::Condition(&changed), kIdleRecheck);
  }
  while (!running_.empty())
    Retire(running_.size() - 1, absl::UnavailableError("the worker is shutting down"));
  std::vector<std::shared_ptr<ScheduledRequest>> queued;
  {
    absl::MutexLock lock(&mutex_);
    queued = queue_.RemoveIf([](const ScheduledRequest&) { return true; });
  }
  for (auto& request : queued)
    request->Complete(absl::UnavailableError("the worker is shutting down"));
}

bool Scheduler::Iterate() {
  bool worked = false;
  std::vector<std::shared_ptr<ScheduledRequest>> gone;
  {
    absl::MutexLock lock(&mutex_);
    gone = queue_.RemoveIf([](const ScheduledRequest& r) { return r.cancelled(); });
  }
  for (auto& request : gone) request->Complete(absl::CancelledError("the client went away"));
  worked |= !gone.empty();

  const size_t before = running_.size();
  Admit();
  worked |= running_.size() != before;

  for (size_t i = running_.size(); i-- > 0;) {
    if (running_[i].request->cancelled()) {
      Retire(i, absl::CancelledError("the client went away"));
      worked = true;
    }
  }

  // One decode step for every decoding request together.
  std::vector<ScheduledRequest*> batch;
  for (const Running& r : running_) {
    if (r.request->decoding() && !r.request->finished()) batch.push_back(r.request.get());
  }
  if (!batch.empty()) {
    const absl::Status stepped = Guard([&] { return decode_(batch); });
    if (observer_.on_decode_step) observer_.on_decode_step(static_cast<int32_t>(batch.size()));
    if (!stepped.ok()) {
      for (size_t i = running_.size(); i-- > 0;) {
        if (std::find(batch.begin(), batch.end(), running_[i].request.get()) != batch.end())
          Retire(i, stepped);
      }
    }
    worked = true;
  }
  for (size_t i = running_.size(); i-- > 0;) {
    if (running_[i].request->decoding() && running_[i].request->finished()) {
      Retire(i, absl::OkStatus());
      worked = true;
    }
  }

  // Then one piece of prefill work, the prefilling requests taking turns.
  const size_t n = running_.size();
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (next_prefill_ + k) % n;
    Running& r = running_[i];
    if (r.request->decoding()) continue;
    bool ready = false;
    absl::Status status = Guard([&] {
      ready = r.request->PrefillReady();
      return absl::OkStatus();
    });
    if (status.ok() && !ready) continue;
    if (status.ok()) status = Guard([&] { return r.request->StepPrefill(); });
    next_prefill_ = i + 1;
    worked = true;
    if (!status.ok()) {
      Retire(i, status);
    } else if (r.request->decoding()) {
      int64_t remaining = 0;
      status = Guard([&] {
        remaining = r.request->remaining_kv_bytes();
        return absl::OkStatus();
      });
      if (status.ok()) {
        Reserve(r, std::min(remaining, r.reserved));
      } else {
        Retire(i, status);
      }
    }
    break;
  }
  RecordLoad();
  return worked;
}

void Scheduler::Admit() {
  while (true) {
    std::shared_ptr<ScheduledRequest> request;
    int64_t peak = 0;
    {
      absl::MutexLock lock(&mutex_);
      if (stopping_ || queue_.empty() || running_count_ >= options_.max_batch) return;
      peak = queue_.Peek()->peak_kv_bytes();
      if (reserved_ + peak > options_.kv_budget_bytes) return;  // waits for KV to free
      request = queue_.Pop();
      reserved_ += peak;
      ++running_count_;
    }
    running_.push_back(Running{request, peak});
    const absl::Status started = Guard([&] { return request->Start(); });
    if (!started.ok()) Retire(running_.size() - 1, started);
  }
}

void Scheduler::Retire(size_t i, absl::Status status) {
  Running running = std::move(running_[i]);
  running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
  if (next_prefill_ > i) --next_prefill_;
  {
    // The reservation goes first, so a caller that hears of the end finds the room free.
    // Nothing takes KV in between: requests allocate on this thread (or on transfers this
    // thread starts) and Complete below frees this one's before this thread goes on.
    absl::MutexLock lock(&mutex_);
    reserved_ -= running.reserved;
    --running_count_;
    ++wakes_;
  }
  RecordLoad();
  const absl::Status completed = Guard([&] {
    running.request->Complete(std::move(status));
    return absl::OkStatus();
  });
  (void)completed;  // nothing left to tell: the request is gone either way
}

void Scheduler::Reserve(Running& running, int64_t bytes) {
  absl::MutexLock lock(&mutex_);
  reserved_ += bytes - running.reserved;
  running.reserved = bytes;
}

void Scheduler::RecordLoad() {
  int32_t decoding = 0;
  for (const Running& r : running_) decoding += r.request->decoding() ? 1 : 0;
  SchedulerLoad load;
  {
    absl::MutexLock lock(&mutex_);
    decoding_count_ = decoding;
    load = LoadLocked();
  }
  if (observer_.on_load) observer_.on_load(load);
}

}  // namespace semshare::worker
