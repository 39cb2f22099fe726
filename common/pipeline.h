#ifndef SEMSHARE_COMMON_PIPELINE_H_
#define SEMSHARE_COMMON_PIPELINE_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace semshare {

// Runs `produce` on its own thread and `consume` on the caller's, with at most `capacity`
// items between them, so producing item i+1 overlaps consuming item i (e.g. reading KV from
// disk while the previous chunk is on the wire). When the consumer fails, `push` returns its
// error so the producer stops; when the producer fails, the items it pushed before are still
// consumed. Returns the first error, or OK.
template <typename T>
absl::Status PipelineStream(
    size_t capacity,
    const std::function<absl::Status(const std::function<absl::Status(T)>&)>& produce,
    const std::function<absl::Status(const T&)>& consume) {
  struct Shared {
    explicit Shared(size_t capacity) : capacity(capacity) {}
    bool CanPush() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return items.size() < capacity || !consume_status.ok();
    }
    bool CanPop() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !items.empty() || produced; }

    const size_t capacity;
    mutable absl::Mutex mu;
    std::deque<T> items ABSL_GUARDED_BY(mu);
    bool produced ABSL_GUARDED_BY(mu) = false;
    absl::Status produce_status ABSL_GUARDED_BY(mu);
    absl::Status consume_status ABSL_GUARDED_BY(mu);
  } shared(capacity < 1 ? 1 : capacity);

  const auto push = [&shared](T item) -> absl::Status {
    absl::MutexLock lock(&shared.mu);
    shared.mu.Await(absl::Condition(&shared, &Shared::CanPush));
    if (!shared.consume_status.ok()) return shared.consume_status;
    shared.items.push_back(std::move(item));
    return absl::OkStatus();
  };
  std::thread producer([&shared, &produce, &push] {
    absl::Status status = produce(push);
    absl::MutexLock lock(&shared.mu);
    shared.produced = true;
    shared.produce_status = std::move(status);
  });
  absl::Status result;
  while (true) {
    T item;
    {
      absl::MutexLock lock(&shared.mu);
      shared.mu.Await(absl::Condition(&shared, &Shared::CanPop));
      if (shared.items.empty()) {
        result = shared.produce_status;
        break;
      }
      item = std::move(shared.items.front());
      shared.items.pop_front();
    }
    absl::Status consumed = consume(item);
    if (!consumed.ok()) {
      absl::MutexLock lock(&shared.mu);
      shared.consume_status = consumed;
      result = std::move(consumed);
      break;
    }
  }
  producer.join();
  return result;
}

}  // namespace semshare

#endif  // SEMSHARE_COMMON_PIPELINE_H_
