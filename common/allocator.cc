#include "common/allocator.h"

#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace semshare {

void ReleaseFreeMemory() {
  static std::atomic<int64_t> last_trim_ms{0};
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
  int64_t last = last_trim_ms.load(std::memory_order_relaxed);
  constexpr int64_t kMinIntervalMs = 1000;
  if (now_ms - last < kMinIntervalMs) return;
  if (!last_trim_ms.compare_exchange_strong(last, now_ms, std::memory_order_relaxed))
    return;  // another thread trims
  malloc_trim(0);
}

}  // namespace semshare
