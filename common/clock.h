#ifndef SEMSHARE_COMMON_CLOCK_H_
#define SEMSHARE_COMMON_CLOCK_H_

#include <chrono>

#include "absl/time/time.h"

namespace semshare {

using SteadyClock = std::chrono::steady_clock;

// Milliseconds from `start` to now: stage timings (steady, never jumps).
inline double MillisSince(SteadyClock::time_point start) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - start).count();
}
inline double MillisBetween(SteadyClock::time_point start, SteadyClock::time_point end) {
  return std::chrono::duration<double, std::milli>(end - start).count();
}

// Time as deadline and health logic sees it; tests drive a fake instead of sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// absl::Now(); one process-wide instance, thread-safe, never destroyed.
const Clock* RealClock();

}  // namespace semshare

#endif  // SEMSHARE_COMMON_CLOCK_H_
