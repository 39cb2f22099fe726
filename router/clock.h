#ifndef SEMSHARE_ROUTER_CLOCK_H_
#define SEMSHARE_ROUTER_CLOCK_H_

#include "absl/time/time.h"

namespace semshare::router {

// Time as the router's health and deadline logic sees it; tests drive a fake instead of
// sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// absl::Now(); one process-wide instance, thread-safe, never destroyed.
const Clock* RealClock();

}  // namespace semshare::router

#endif  // SEMSHARE_ROUTER_CLOCK_H_
