#include "router/backoff.h"

#include <algorithm>
#include <cmath>

#include "absl/random/distributions.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace semshare::router {

absl::Status BackoffOptions::Validate() const {
  if (initial <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("backoff initial must be > 0");
  }
  if (max < initial) {
    return absl::InvalidArgumentError(absl::StrCat("backoff max (", absl::FormatDuration(max),
                                                   ") must be >= initial (",
                                                   absl::FormatDuration(initial), ")"));
  }
  if (!(std::isfinite(multiplier) && multiplier >= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("backoff multiplier must be >= 1, got ", multiplier));
  }
  if (!(jitter >= 0 && jitter < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("backoff jitter must be in [0, 1), got ", jitter));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<EndpointHealth>> EndpointHealth::Create(
    const BackoffOptions& options, const Clock* clock, absl::BitGenRef random) {
  if (clock == nullptr) return absl::InvalidArgumentError("endpoint health needs a clock");
  absl::Status valid = options.Validate();
  if (!valid.ok()) return valid;
  return std::unique_ptr<EndpointHealth>(new EndpointHealth(options, clock, random));
}

absl::Duration EndpointHealth::Jittered(absl::Duration backoff) {
  if (options_.jitter == 0) return backoff;
  const double factor = 1.0 + options_.jitter * (2.0 * absl::Uniform(random_, 0.0, 1.0) - 1.0);
  return std::min(backoff * factor, options_.max);
}

bool EndpointHealth::Admit(absl::string_view endpoint) {
  absl::MutexLock lock(&mutex_);
  auto it = states_.find(endpoint);
  if (it == states_.end() || it->second.up) return true;
  const absl::Time now = clock_->Now();
  EndpointState& state = it->second;
  if (now < state.retry_at) return false;
  state.retry_at = now + Jittered(state.backoff);
  state.probing = true;
  return true;
}

bool EndpointHealth::IsUp(absl::string_view endpoint) const {
  absl::MutexLock lock(&mutex_);
  auto it = states_.find(endpoint);
  return it == states_.end() || it->second.up;
}

void EndpointHealth::RecordSuccess(absl::string_view endpoint) {
  absl::MutexLock lock(&mutex_);
  auto it = states_.find(endpoint);
  if (it != states_.end()) it->second = EndpointState{};
}

void EndpointHealth::RecordFailure(absl::string_view endpoint) {
  absl::MutexLock lock(&mutex_);
  EndpointState& state = states_[endpoint];
  if (!state.up && !state.probing) return;  // sent before it went down: the same outage
  state.up = false;
  state.probing = false;
  ++state.consecutive_failures;
  state.backoff = state.consecutive_failures == 1
                      ? options_.initial
                      : std::min(state.backoff * options_.multiplier, options_.max);
  state.retry_at = clock_->Now() + Jittered(state.backoff);
}

EndpointState EndpointHealth::State(absl::string_view endpoint) const {
  absl::MutexLock lock(&mutex_);
  auto it = states_.find(endpoint);
  return it == states_.end() ? EndpointState{} : it->second;
}

}  // namespace semshare::router
