#ifndef SEMSHARE_ROUTER_BACKOFF_H_
#define SEMSHARE_ROUTER_BACKOFF_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/bit_gen_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

// Health of the router's endpoints (shards, workers): an endpoint that fails is marked down
// and left alone until its retry time, then probed; each further failure waits longer
// (exponential backoff with jitter, so routers do not probe in step) and a success brings it
// back at once. DESIGN.md: a dead shard costs a miss and comes back by itself.
namespace semshare::router {

struct BackoffOptions {
  absl::Duration initial = absl::Milliseconds(100);  // the wait after the first failure
  absl::Duration max = absl::Seconds(10);            // no wait is longer, jitter included
  double multiplier = 2.0;                           // each further failure, >= 1
  // Each wait is scaled by a uniform factor in [1 - jitter, 1 + jitter); jitter in [0, 1).
  double jitter = 0.2;

  absl::Status Validate() const;
};

struct EndpointState {
  bool up = true;
  int32_t consecutive_failures = 0;
  absl::Duration backoff = absl::ZeroDuration();  // un-jittered wait of the last failure
  absl::Time retry_at = absl::InfinitePast();     // when down: the next probe may go
  bool probing = false;  // a probe was admitted since the last failure was recorded
};

// Thread-safe. Endpoints are named by address and start up.
class EndpointHealth {
 public:
  // `clock` and the generator behind `random` must outlive the tracker.
  static absl::StatusOr<std::unique_ptr<EndpointHealth>> Create(const BackoffOptions& options,
                                                                const Clock* clock,
                                                                absl::BitGenRef random);

  // Whether a call may go to `endpoint` now: always when up; when down, once its retry time
  // has come, and then the call is the probe: the next one waits another (jittered) backoff,
  // so a down endpoint gets one probe per backoff period until a result is recorded.
  bool Admit(absl::string_view endpoint);

  // Up right now (no probing): for placement and ranking, which must not consume probes.
  bool IsUp(absl::string_view endpoint) const;

  // A success brings the endpoint up. A failure marks it down; the wait grows only with
  // failures of probes, so the many calls that were in flight when it died count as one.
  void RecordSuccess(absl::string_view endpoint);
  void RecordFailure(absl::string_view endpoint);

  EndpointState State(absl::string_view endpoint) const;

 private:
  EndpointHealth(const BackoffOptions& options, const Clock* clock, absl::BitGenRef random)
      : options_(options), clock_(clock), random_(random) {}

  absl::Duration Jittered(absl::Duration backoff) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const BackoffOptions options_;
  const Clock* const clock_;
  mutable absl::Mutex mutex_;
  absl::BitGenRef random_ ABSL_GUARDED_BY(mutex_);
  absl::flat_hash_map<std::string, EndpointState> states_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace semshare::router

#endif  // SEMSHARE_ROUTER_BACKOFF_H_
