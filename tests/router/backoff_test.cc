#include "router/backoff.h"

#include <cstdint>
#include <limits>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/router/fake_clock.h"

namespace semshare::router {
namespace {

using ::testing::HasSubstr;

// A generator whose every draw is the same word: 0 gives the smallest jitter factor, all
// ones the largest.
class FixedBits {
 public:
  using result_type = uint64_t;
  explicit FixedBits(uint64_t bits) : bits_(bits) {}
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return std::numeric_limits<uint64_t>::max(); }
  result_type operator()() { return bits_; }

 private:
  uint64_t bits_;
};

BackoffOptions NoJitter() {
  BackoffOptions options;
  options.initial = absl::Milliseconds(100);
  options.max = absl::Seconds(1);
  options.multiplier = 2;
  options.jitter = 0;
  return options;
}

class BackoffTest : public ::testing::Test {
 protected:
  std::unique_ptr<EndpointHealth> Make(const BackoffOptions& options) {
    absl::StatusOr<std::unique_ptr<EndpointHealth>> health =
        EndpointHealth::Create(options, &clock_, random_);
    EXPECT_TRUE(health.ok()) << health.status();
    return *std::move(health);
  }

  // Fails the probe that is due now, as the router would.
  void FailProbe(EndpointHealth& health, const char* endpoint) {
    ASSERT_TRUE(health.Admit(endpoint));
    health.RecordFailure(endpoint);
  }

  FakeClock clock_;
  std::mt19937_64 random_{42};
};

TEST_F(BackoffTest, OptionsAreValidated) {
  struct Case {
    void (*change)(BackoffOptions&);
    const char* message;
  };
  const Case cases[] = {
      {[](BackoffOptions& o) { o.initial = absl::ZeroDuration(); }, "initial"},
      {[](BackoffOptions& o) { o.max = absl::Milliseconds(1); }, "max"},
      {[](BackoffOptions& o) { o.multiplier = 0.5; }, "multiplier"},
      {[](BackoffOptions& o) { o.jitter = 1.0; }, "jitter"},
      {[](BackoffOptions& o) { o.jitter = -0.1; }, "jitter"},
  };
  for (const Case& c : cases) {
    BackoffOptions options;
    c.change(options);
    absl::StatusOr<std::unique_ptr<EndpointHealth>> health =
        EndpointHealth::Create(options, &clock_, random_);
    ASSERT_FALSE(health.ok());
    EXPECT_THAT(health.status().message(), HasSubstr(c.message));
  }
  EXPECT_FALSE(EndpointHealth::Create(BackoffOptions{}, nullptr, random_).ok());
  EXPECT_TRUE(BackoffOptions{}.Validate().ok());
}

TEST_F(BackoffTest, UnknownEndpointsAreUp) {
  auto health = Make(NoJitter());
  EXPECT_TRUE(health->IsUp("s1"));
  EXPECT_TRUE(health->Admit("s1"));
  EXPECT_EQ(health->State("s1").consecutive_failures, 0);
}

TEST_F(BackoffTest, FailureMarksDownUntilRetryTimeThenOneProbe) {
  auto health = Make(NoJitter());
  health->RecordFailure("s1");
  EXPECT_FALSE(health->IsUp("s1"));
  EXPECT_TRUE(health->IsUp("s2"));  // endpoints are independent
  EXPECT_EQ(health->State("s1").retry_at, clock_.Now() + absl::Milliseconds(100));
  clock_.Advance(absl::Milliseconds(99));
  EXPECT_FALSE(health->Admit("s1"));
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(health->Admit("s1"));   // the probe
  EXPECT_FALSE(health->Admit("s1"));  // only one per period
  EXPECT_FALSE(health->IsUp("s1"));
  clock_.Advance(absl::Milliseconds(100));
  EXPECT_TRUE(health->Admit("s1"));  // a probe whose result never came is not waited on forever
}

TEST_F(BackoffTest, WaitsGrowExponentiallyUpToMax) {
  auto health = Make(NoJitter());
  health->RecordFailure("s1");
  const int64_t expected_ms[] = {200, 400, 800, 1000, 1000};
  for (int64_t ms : expected_ms) {
    clock_.Advance(health->State("s1").retry_at - clock_.Now());
    FailProbe(*health, "s1");
    EXPECT_EQ(health->State("s1").retry_at - clock_.Now(), absl::Milliseconds(ms));
  }
  EXPECT_EQ(health->State("s1").consecutive_failures, 6);
}

TEST_F(BackoffTest, ComesBackByItselfAfterASuccessfulProbe) {
  auto health = Make(NoJitter());
  health->RecordFailure("s1");
  clock_.Advance(absl::Milliseconds(100));
  FailProbe(*health, "s1");
  clock_.Advance(absl::Milliseconds(200));
  ASSERT_TRUE(health->Admit("s1"));
  health->RecordSuccess("s1");
  EXPECT_TRUE(health->IsUp("s1"));
  EXPECT_TRUE(health->Admit("s1"));
  EXPECT_EQ(health->State("s1").consecutive_failures, 0);
  // And the next outage starts from the initial wait again.
  health->RecordFailure("s1");
  EXPECT_EQ(health->State("s1").retry_at - clock_.Now(), absl::Milliseconds(100));
}

TEST_F(BackoffTest, CallsInFlightWhenItDiedCountAsOneFailure) {
  auto health = Make(NoJitter());
  for (int i = 0; i < 16; ++i) health->RecordFailure("s1");
  EXPECT_EQ(health->State("s1").consecutive_failures, 1);
  EXPECT_EQ(health->State("s1").retry_at - clock_.Now(), absl::Milliseconds(100));
}

TEST_F(BackoffTest, JitterStaysInItsBandAndUnderMax) {
  BackoffOptions options = NoJitter();
  options.jitter = 0.5;
  auto health = Make(options);
  bool below = false, above = false;
  for (int i = 0; i < 200; ++i) {
    const std::string endpoint = "s" + std::to_string(i);
    health->RecordFailure(endpoint);
    const absl::Duration wait = health->State(endpoint).retry_at - clock_.Now();
    EXPECT_GE(wait, absl::Milliseconds(50));
    EXPECT_LT(wait, absl::Milliseconds(150));
    below |= wait < absl::Milliseconds(90);
    above |= wait > absl::Milliseconds(110);
  }
  EXPECT_TRUE(below && above);  // it does spread
  // Near max the band is clipped.
  for (int i = 0; i < 10; ++i) {
    clock_.Advance(health->State("s0").retry_at - clock_.Now());
    FailProbe(*health, "s0");
    EXPECT_LE(health->State("s0").retry_at - clock_.Now(), options.max);
  }
}

TEST_F(BackoffTest, JitterComesFromTheInjectedGenerator) {
  BackoffOptions options = NoJitter();
  options.jitter = 0.5;
  FixedBits low(0), high(~uint64_t{0});
  auto low_health = *EndpointHealth::Create(options, &clock_, low);
  auto high_health = *EndpointHealth::Create(options, &clock_, high);
  low_health->RecordFailure("s1");
  high_health->RecordFailure("s1");
  EXPECT_EQ(low_health->State("s1").retry_at - clock_.Now(), absl::Milliseconds(50));
  const absl::Duration high_wait = high_health->State("s1").retry_at - clock_.Now();
  EXPECT_GT(high_wait, absl::Milliseconds(149));
  EXPECT_LE(high_wait, absl::Milliseconds(150));
}

}  // namespace
}  // namespace semshare::router
