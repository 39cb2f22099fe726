#include "inference_worker/engine/retention.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace semshare {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr RetentionPolicy kAllPolicies[] = {
    RetentionPolicy::kNone, RetentionPolicy::kExpDecay,  RetentionPolicy::kSnapKV,
    RetentionPolicy::kH2O,  RetentionPolicy::kStreaming, RetentionPolicy::kPyramid,
    RetentionPolicy::kTova,
};

std::vector<int64_t> ToVector(const at::Tensor& indices) {
  at::Tensor cpu = indices.to(at::kCPU, at::kLong).contiguous();
  return std::vector<int64_t>(cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel());
}

at::Tensor Floats(const std::vector<float>& values) {
  return at::tensor(values, at::TensorOptions().dtype(at::kFloat));
}

at::Tensor Positions(int64_t n) { return at::arange(n, at::TensorOptions().dtype(at::kLong)); }

at::Tensor Mask(int64_t n, const std::vector<int64_t>& set) {
  at::Tensor mask = at::zeros({n}, at::TensorOptions().dtype(at::kBool));
  for (int64_t i : set) mask[i] = true;
  return mask;
}

// The same scores in all three stats, so every scored policy ranks alike.
LayerAttentionStats SameStats(const at::Tensor& scores) {
  return LayerAttentionStats{scores, scores, scores};
}

RetentionOptions Options(RetentionPolicy policy, double share, int64_t sinks, int64_t recent) {
  RetentionOptions options;
  options.policy = policy;
  options.budget_share = share;
  options.r0 = share;  // exp_decay layer 0 keeps `share` too
  options.r_min = 0.01;
  options.sink_tokens = sinks;
  options.recent_window = recent;
  options.snapkv_pool_kernel = 1;  // pooling is tested on its own
  return options;
}

bool IsSortedUnique(const std::vector<int64_t>& v) {
  return std::adjacent_find(v.begin(), v.end(), [](int64_t a, int64_t b) { return a >= b; }) ==
         v.end();
}

// ---- Names ----

TEST(RetentionPolicyNameTest, RoundTripsEveryPolicy) {
  for (RetentionPolicy policy : kAllPolicies) {
    absl::StatusOr<RetentionPolicy> parsed = ParseRetentionPolicy(RetentionPolicyName(policy));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, policy);
  }
  EXPECT_EQ(RetentionPolicyName(RetentionPolicy::kExpDecay), "exp_decay");
  EXPECT_EQ(RetentionPolicyName(RetentionPolicy::kSnapKV), "snapkv");
}

TEST(RetentionPolicyNameTest, UnknownNameListsValidNames) {
  absl::StatusOr<RetentionPolicy> parsed = ParseRetentionPolicy("SnapKV");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  for (const char* name : {"none", "exp_decay", "snapkv", "h2o", "streaming", "pyramid", "tova"}) {
    EXPECT_THAT(parsed.status().message(), HasSubstr(name));
  }
  EXPECT_THAT(parsed.status().message(), HasSubstr("\"SnapKV\""));
  EXPECT_FALSE(ParseRetentionPolicy("").ok());
}

// ---- Validate ----

TEST(RetentionOptionsTest, DefaultsAreValid) { EXPECT_TRUE(RetentionOptions().Validate().ok()); }

TEST(RetentionOptionsTest, RejectsOutOfRangeFields) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct Case {
    const char* field;
    void (*mutate)(RetentionOptions&);
  };
  const Case cases[] = {
      {"r0", [](RetentionOptions& o) { o.r0 = 0.0; }},
      {"r0", [](RetentionOptions& o) { o.r0 = 1.5; }},
      {"gamma", [](RetentionOptions& o) { o.gamma = 0.0; }},
      {"gamma", [](RetentionOptions& o) { o.gamma = 1.01; }},
      {"r_min", [](RetentionOptions& o) { o.r_min = -0.1; }},
      {"budget_share", [](RetentionOptions& o) { o.budget_share = 0.0; }},
      {"budget_share", [](RetentionOptions& o) { o.budget_share = 2.0; }},
      {"sink_tokens", [](RetentionOptions& o) { o.sink_tokens = -1; }},
      {"recent_window", [](RetentionOptions& o) { o.recent_window = -1; }},
      {"snapkv_pool_kernel", [](RetentionOptions& o) { o.snapkv_pool_kernel = 0; }},
      {"pyramid_beta", [](RetentionOptions& o) { o.pyramid_beta = 0.5; }},
      {"merge_min_similarity", [](RetentionOptions& o) { o.merge_min_similarity = 1.5; }},
      {"merge_min_similarity",
       [](RetentionOptions& o) {
         o.merge_min_similarity = std::numeric_limits<double>::quiet_NaN();
       }},
      {"merge_window", [](RetentionOptions& o) { o.merge_window = -1; }},
  };
  for (const Case& c : cases) {
    RetentionOptions options;
    c.mutate(options);
    absl::Status status = options.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(status.message(), HasSubstr(c.field));
  }
  RetentionOptions with_nan;
  with_nan.gamma = nan;
  EXPECT_FALSE(with_nan.Validate().ok());
  RetentionOptions boundaries;  // the closed ends of the ranges are valid
  boundaries.r0 = boundaries.gamma = boundaries.r_min = boundaries.budget_share = 1.0;
  boundaries.sink_tokens = boundaries.recent_window = 0;
  boundaries.snapkv_pool_kernel = 1;
  boundaries.pyramid_beta = 1.0;
  boundaries.merge_min_similarity = -1.0;
  boundaries.merge_window = 0;
  EXPECT_TRUE(boundaries.Validate().ok());
}

// ---- Shares ----

TEST(RetentionSharesTest, NoneKeepsEverything) {
  RetentionOptions options;
  EXPECT_THAT(RetentionShares(options, 3), ElementsAre(1.0, 1.0, 1.0));
  EXPECT_TRUE(RetentionShares(options, 0).empty());
}

TEST(RetentionSharesTest, ExpDecayMatchesFormulaAndNeverGrows) {
  RetentionOptions options;
  options.policy = RetentionPolicy::kExpDecay;
  options.r0 = 0.9;
  options.gamma = 0.7;
  options.r_min = 0.1;
  const std::vector<double> shares = RetentionShares(options, 12);
  ASSERT_EQ(shares.size(), 12u);
  for (size_t l = 0; l < shares.size(); ++l) {
    EXPECT_DOUBLE_EQ(shares[l], std::max(0.1, 0.9 * std::pow(0.7, static_cast<double>(l))));
    if (l > 0) {
      EXPECT_LE(shares[l], shares[l - 1]);
    }
  }
  EXPECT_DOUBLE_EQ(shares[0], 0.9);
  EXPECT_DOUBLE_EQ(shares.back(), 0.1);  // floored by r_min
}

TEST(RetentionSharesTest, ExpDecayFloorAboveR0IsClampedToOne) {
  RetentionOptions options;
  options.policy = RetentionPolicy::kExpDecay;
  options.r0 = 0.2;
  options.r_min = 0.5;  // floor above the decay: every layer keeps r_min
  EXPECT_THAT(RetentionShares(options, 3), ElementsAre(0.5, 0.5, 0.5));
  options.r0 = 1.0;
  options.gamma = 1.0;
  options.r_min = 1.0;
  for (double share : RetentionShares(options, 4)) EXPECT_LE(share, 1.0);
}

TEST(RetentionSharesTest, UniformPoliciesKeepBudgetShare) {
  for (RetentionPolicy policy : {RetentionPolicy::kSnapKV, RetentionPolicy::kH2O,
                                 RetentionPolicy::kStreaming, RetentionPolicy::kTova}) {
    RetentionOptions options;
    options.policy = policy;
    options.budget_share = 0.3;
    EXPECT_THAT(RetentionShares(options, 4), ElementsAre(0.3, 0.3, 0.3, 0.3))
        << RetentionPolicyName(policy);
  }
}

TEST(RetentionSharesTest, PyramidMeanIsBudgetAndSharesFallWithDepth) {
  for (double budget : {0.05, 0.2, 0.5, 0.55, 0.9}) {
    for (int64_t layers : {2, 3, 8, 24}) {
      RetentionOptions options;
      options.policy = RetentionPolicy::kPyramid;
      options.budget_share = budget;
      const std::vector<double> shares = RetentionShares(options, layers);
      ASSERT_EQ(static_cast<int64_t>(shares.size()), layers);
      const double mean = std::accumulate(shares.begin(), shares.end(), 0.0) / layers;
      EXPECT_NEAR(mean, budget, 1e-12) << budget << " " << layers;
      for (size_t l = 0; l < shares.size(); ++l) {
        EXPECT_GT(shares[l], 0.0);
        EXPECT_LE(shares[l], 1.0 + 1e-12);
        if (l > 0) {
          EXPECT_LT(shares[l], shares[l - 1]);
        }
      }
      // Equal steps: linear in depth.
      for (size_t l = 2; l < shares.size(); ++l) {
        EXPECT_NEAR(shares[l - 1] - shares[l], shares[0] - shares[1], 1e-12);
      }
      EXPECT_GE(shares.back(), budget / options.pyramid_beta - 1e-12);
    }
  }
}

TEST(RetentionSharesTest, PyramidFormula) {
  RetentionOptions options;
  options.policy = RetentionPolicy::kPyramid;
  options.budget_share = 0.2;
  options.pyramid_beta = 20.0;
  // Spread bounded by beta: last = 0.2 / 20 = 0.01, first = 0.4 - 0.01 = 0.39.
  std::vector<double> shares = RetentionShares(options, 3);
  EXPECT_NEAR(shares[0], 0.39, 1e-12);
  EXPECT_NEAR(shares[1], 0.2, 1e-12);
  EXPECT_NEAR(shares[2], 0.01, 1e-12);
  // Spread bounded by the first layer's share of 1: 0.55 +- 0.45.
  options.budget_share = 0.55;
  shares = RetentionShares(options, 2);
  EXPECT_NEAR(shares[0], 1.0, 1e-12);
  EXPECT_NEAR(shares[1], 0.1, 1e-12);
  // One layer, or beta 1, is uniform.
  EXPECT_THAT(RetentionShares(options, 1), ElementsAre(0.55));
  options.pyramid_beta = 1.0;
  for (double share : RetentionShares(options, 5)) EXPECT_NEAR(share, 0.55, 1e-12);
}

// ---- SnapKV pooling ----

TEST(SnapKVPoolTest, MaxPoolsNeighboursSameLength) {
  const at::Tensor mass = Floats({0, 0, 5, 0, 0, 0, 1, 0});
  EXPECT_TRUE(at::equal(SnapKVPool(mass, 1), mass));
  EXPECT_TRUE(at::equal(SnapKVPool(mass, 3), Floats({0, 5, 5, 5, 0, 1, 1, 1})));
  // Even kernel: (k - 1) / 2 = 0 before, k / 2 = 1 after.
  EXPECT_TRUE(at::equal(SnapKVPool(mass, 2), Floats({0, 5, 5, 0, 0, 1, 1, 0})));
  // Wider than the input: every token sees the maximum.
  EXPECT_TRUE(at::equal(SnapKVPool(mass, 99), at::full({8}, 5.0f)));
  EXPECT_EQ(SnapKVPool(Floats({}), 7).numel(), 0);
}

// ---- SelectRetainedTokens ----

// Scores that rank tokens in a scrambled order, with no ties.
at::Tensor ScrambledScores(int64_t n) {
  std::vector<float> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values[static_cast<size_t>(i)] = static_cast<float>((i * 7) % n);
  return Floats(values);
}

TEST(SelectRetainedTokensTest, EveryPolicyKeepsSinksRecentAndProtectedWithinBudget) {
  constexpr int64_t kTokens = 40;
  const std::vector<int64_t> protected_set = {9, 17, 18, 25};
  const at::Tensor mask = Mask(kTokens, protected_set);
  for (RetentionPolicy policy : kAllPolicies) {
    for (int64_t layers : {1, 4}) {
      for (int64_t layer = 0; layer < layers; ++layer) {
        RetentionOptions options = Options(policy, 0.5, 3, 5);
        options.gamma = 0.6;
        options.snapkv_pool_kernel = 3;
        const std::vector<int64_t> kept = ToVector(SelectRetainedTokens(
            options, layer, layers, SameStats(ScrambledScores(kTokens)), Positions(kTokens), mask));
        const std::string where = RetentionPolicyName(policy) + " layer " + std::to_string(layer);
        ASSERT_TRUE(IsSortedUnique(kept)) << where;
        const std::set<int64_t> kept_set(kept.begin(), kept.end());
        std::set<int64_t> forced = {0, 1, 2, 35, 36, 37, 38, 39};
        forced.insert(protected_set.begin(), protected_set.end());
        for (int64_t i : forced) EXPECT_TRUE(kept_set.count(i)) << where << " lost " << i;
        const double share = RetentionShares(options, layers)[static_cast<size_t>(layer)];
        int64_t budget =
            std::max<int64_t>(8, static_cast<int64_t>(std::ceil(share * kTokens - 1e-9)));
        budget = std::min<int64_t>(budget, kTokens);
        if (policy == RetentionPolicy::kNone) {
          EXPECT_EQ(kept.size(), static_cast<size_t>(kTokens)) << where;
        } else if (policy == RetentionPolicy::kStreaming) {
          EXPECT_EQ(kept_set, forced) << where;
        } else {
          EXPECT_EQ(static_cast<int64_t>(kept.size()),
                    std::max<int64_t>(budget, static_cast<int64_t>(forced.size())))
              << where;
        }
      }
    }
  }
}

// Three stats that disagree: each policy must follow its own.
LayerAttentionStats DisagreeingStats() {
  LayerAttentionStats stats;
  //                          0  1  2  3  4  5  6  7  8  9
  stats.window_mass = Floats({0, 9, 0, 8, 0, 0, 0, 0, 0, 0});
  stats.accumulated_mass = Floats({0, 0, 0, 0, 7, 0, 9, 0, 0, 0});
  stats.last_query_mass = Floats({0, 0, 6, 0, 0, 0, 0, 9, 0, 0});
  return stats;
}

TEST(SelectRetainedTokensTest, EachPolicyRanksByItsOwnStatistic) {
  // Budget 4 of 10: sink 0 and recent 9 forced, two scored slots.
  const LayerAttentionStats stats = DisagreeingStats();
  const at::Tensor positions = Positions(10);
  auto kept = [&](RetentionPolicy policy) {
    return ToVector(
        SelectRetainedTokens(Options(policy, 0.4, 1, 1), 0, 1, stats, positions, at::Tensor()));
  };
  EXPECT_THAT(kept(RetentionPolicy::kExpDecay), ElementsAre(0, 1, 3, 9));
  EXPECT_THAT(kept(RetentionPolicy::kSnapKV), ElementsAre(0, 1, 3, 9));  // kernel 1
  EXPECT_THAT(kept(RetentionPolicy::kPyramid), ElementsAre(0, 1, 3, 9));
  EXPECT_THAT(kept(RetentionPolicy::kH2O), ElementsAre(0, 4, 6, 9));
  EXPECT_THAT(kept(RetentionPolicy::kTova), ElementsAre(0, 2, 7, 9));
  EXPECT_THAT(kept(RetentionPolicy::kStreaming), ElementsAre(0, 9));
  EXPECT_THAT(kept(RetentionPolicy::kNone), ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9));
}

TEST(SelectRetainedTokensTest, ChosenTokensAreTheHighestScoring) {
  constexpr int64_t kTokens = 50;
  const at::Tensor scores = ScrambledScores(kTokens);
  for (RetentionPolicy policy : {RetentionPolicy::kExpDecay, RetentionPolicy::kH2O,
                                 RetentionPolicy::kTova, RetentionPolicy::kSnapKV}) {
    const std::vector<int64_t> kept = ToVector(SelectRetainedTokens(
        Options(policy, 0.3, 2, 3), 0, 1, SameStats(scores), Positions(kTokens), at::Tensor()));
    ASSERT_EQ(kept.size(), 15u);
    // Every scored token kept outranks every free token dropped.
    float min_kept = std::numeric_limits<float>::infinity();
    float max_dropped = -std::numeric_limits<float>::infinity();
    const std::set<int64_t> kept_set(kept.begin(), kept.end());
    for (int64_t i = 2; i < kTokens - 3; ++i) {
      const float score = scores[i].item<float>();
      if (kept_set.count(i)) {
        min_kept = std::min(min_kept, score);
      } else {
        max_dropped = std::max(max_dropped, score);
      }
    }
    EXPECT_GT(min_kept, max_dropped) << RetentionPolicyName(policy);
  }
}

TEST(SelectRetainedTokensTest, SnapKVPoolingChangesTheChoice) {
  // Isolated peaks at 2, 10 and 15; pooling with kernel 3 spreads the top peak to its
  // neighbours, so SnapKV keeps the cluster 1-3 where plain ranking keeps the three peaks.
  std::vector<float> values(20, 0.0f);
  values[2] = 1.0f;
  values[10] = 0.9f;
  values[15] = 0.8f;
  const LayerAttentionStats stats = SameStats(Floats(values));
  RetentionOptions options = Options(RetentionPolicy::kExpDecay, 0.15, 0, 0);
  EXPECT_THAT(ToVector(SelectRetainedTokens(options, 0, 1, stats, Positions(20), at::Tensor())),
              ElementsAre(2, 10, 15));
  options.policy = RetentionPolicy::kSnapKV;
  options.snapkv_pool_kernel = 3;
  EXPECT_THAT(ToVector(SelectRetainedTokens(options, 0, 1, stats, Positions(20), at::Tensor())),
              ElementsAre(1, 2, 3));
  options.policy = RetentionPolicy::kPyramid;  // one layer: share = budget_share
  EXPECT_THAT(ToVector(SelectRetainedTokens(options, 0, 1, stats, Positions(20), at::Tensor())),
              ElementsAre(1, 2, 3));
}

TEST(SelectRetainedTokensTest, PyramidBudgetFallsWithDepth) {
  constexpr int64_t kTokens = 100;
  RetentionOptions options = Options(RetentionPolicy::kPyramid, 0.4, 0, 0);
  const std::vector<double> shares = RetentionShares(options, 4);
  size_t previous = kTokens + 1;
  for (int64_t layer = 0; layer < 4; ++layer) {
    const size_t kept =
        ToVector(SelectRetainedTokens(options, layer, 4, SameStats(ScrambledScores(kTokens)),
                                      Positions(kTokens), at::Tensor()))
            .size();
    EXPECT_EQ(kept,
              static_cast<size_t>(std::ceil(shares[static_cast<size_t>(layer)] * kTokens - 1e-9)));
    EXPECT_LT(kept, previous);
    previous = kept;
  }
}

TEST(SelectRetainedTokensTest, StreamingKeepsOnlySinksRecentAndProtected) {
  RetentionOptions options = Options(RetentionPolicy::kStreaming, 0.9, 2, 3);
  EXPECT_THAT(ToVector(SelectRetainedTokens(options, 0, 1, SameStats(ScrambledScores(20)),
                                            Positions(20), Mask(20, {7, 11}))),
              ElementsAre(0, 1, 7, 11, 17, 18, 19));
  // Streaming needs no attention statistics at all.
  EXPECT_THAT(ToVector(SelectRetainedTokens(options, 0, 1, LayerAttentionStats(), Positions(20),
                                            at::Tensor())),
              ElementsAre(0, 1, 17, 18, 19));
}

TEST(SelectRetainedTokensTest, ForcedSetLargerThanBudgetIsKeptExactly) {
  // Budget max(ceil(0.1 * 30), 2 + 2) = 4, but sinks + recent + 5 protected = 9.
  const std::vector<int64_t> protected_set = {5, 6, 12, 20, 21};
  for (RetentionPolicy policy :
       {RetentionPolicy::kExpDecay, RetentionPolicy::kSnapKV, RetentionPolicy::kH2O,
        RetentionPolicy::kPyramid, RetentionPolicy::kTova, RetentionPolicy::kStreaming}) {
    EXPECT_THAT(ToVector(SelectRetainedTokens(Options(policy, 0.1, 2, 2), 0, 1,
                                              SameStats(ScrambledScores(30)), Positions(30),
                                              Mask(30, protected_set))),
                ElementsAre(0, 1, 5, 6, 12, 20, 21, 28, 29))
        << RetentionPolicyName(policy);
  }
}

TEST(SelectRetainedTokensTest, FewerTokensThanSinksPlusRecentKeepsAll) {
  for (RetentionPolicy policy : kAllPolicies) {
    EXPECT_THAT(
        ToVector(SelectRetainedTokens(Options(policy, 0.1, 4, 32), 0, 1,
                                      SameStats(ScrambledScores(20)), Positions(20), at::Tensor())),
        ElementsAreArray(ToVector(at::arange(20))))
        << RetentionPolicyName(policy);
  }
}

TEST(SelectRetainedTokensTest, SinksAndRecentFollowPositionsNotCacheOrder) {
  // Cache in reverse prompt order: the sink is the last index, the recent window the first.
  const at::Tensor positions = at::arange(9, -1, -1, at::TensorOptions().dtype(at::kLong));
  EXPECT_THAT(ToVector(SelectRetainedTokens(Options(RetentionPolicy::kStreaming, 0.5, 1, 2), 0, 1,
                                            LayerAttentionStats(), positions, at::Tensor())),
              ElementsAre(0, 1, 9));
}

TEST(SelectRetainedTokensTest, TiesGoToTheLowerIndex) {
  const LayerAttentionStats stats = SameStats(at::ones({10}));
  EXPECT_THAT(ToVector(SelectRetainedTokens(Options(RetentionPolicy::kH2O, 0.3, 0, 1), 0, 1, stats,
                                            Positions(10), at::Tensor())),
              ElementsAre(0, 1, 9));
}

TEST(SelectRetainedTokensTest, NaNScoresRankLast) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const LayerAttentionStats stats = SameStats(Floats({nan, 0.1f, nan, 0.2f, -1.0f, nan}));
  EXPECT_THAT(ToVector(SelectRetainedTokens(Options(RetentionPolicy::kTova, 0.5, 0, 0), 0, 1, stats,
                                            Positions(6), at::Tensor())),
              ElementsAre(1, 3, 4));
}

TEST(SelectRetainedTokensTest, BudgetRoundsUpWithoutFloatingPointDrift) {
  // 0.55 * 100 is 55.000000000000007 in doubles; the budget is 55, not 56.
  EXPECT_EQ(
      ToVector(SelectRetainedTokens(Options(RetentionPolicy::kH2O, 0.55, 0, 0), 0, 1,
                                    SameStats(ScrambledScores(100)), Positions(100), at::Tensor()))
          .size(),
      55u);
  EXPECT_EQ(
      ToVector(SelectRetainedTokens(Options(RetentionPolicy::kH2O, 0.55, 0, 0), 0, 1,
                                    SameStats(ScrambledScores(7)), Positions(7), at::Tensor()))
          .size(),
      4u);  // ceil(3.85)
}

TEST(SelectRetainedTokensTest, ReturnsInt64OnPositionsDeviceAndHandlesEmpty) {
  const at::Tensor kept =
      SelectRetainedTokens(Options(RetentionPolicy::kSnapKV, 0.5, 1, 1), 0, 1,
                           SameStats(ScrambledScores(8)), Positions(8), at::Tensor());
  EXPECT_EQ(kept.scalar_type(), at::kLong);
  EXPECT_EQ(kept.device(), Positions(8).device());
  EXPECT_EQ(kept.dim(), 1);
  const at::Tensor empty = SelectRetainedTokens(Options(RetentionPolicy::kH2O, 0.5, 4, 4), 0, 1,
                                                SameStats(Floats({})), Positions(0), at::Tensor());
  EXPECT_EQ(empty.numel(), 0);
  EXPECT_EQ(empty.scalar_type(), at::kLong);
}

TEST(SelectRetainedTokensTest, DoesNotModifyTheProtectedMask) {
  const at::Tensor mask = Mask(10, {4});
  SelectRetainedTokens(Options(RetentionPolicy::kH2O, 0.5, 1, 1), 0, 1,
                       SameStats(ScrambledScores(10)), Positions(10), mask);
  EXPECT_TRUE(at::equal(mask, Mask(10, {4})));
}

TEST(SelectRetainedTokensTest, CallerBugsThrow) {
  const RetentionOptions options = Options(RetentionPolicy::kH2O, 0.5, 1, 1);
  const LayerAttentionStats stats = SameStats(ScrambledScores(10));
  EXPECT_THROW(SelectRetainedTokens(options, 0, 1, SameStats(ScrambledScores(9)), Positions(10),
                                    at::Tensor()),
               c10::Error);
  EXPECT_THROW(
      SelectRetainedTokens(options, 0, 1, LayerAttentionStats(), Positions(10), at::Tensor()),
      c10::Error);
  EXPECT_THROW(SelectRetainedTokens(options, 0, 1, stats, Positions(10), Mask(9, {})), c10::Error);
  EXPECT_THROW(SelectRetainedTokens(options, 2, 2, stats, Positions(10), at::Tensor()), c10::Error);
}

// ---- SelectEvictionVictim ----

TEST(SelectEvictionVictimTest, EvictsLowestScoringFreeToken) {
  // Lowest scores sit on the sink (0), the recent window (9) and a protected token (5).
  const LayerAttentionStats stats =
      SameStats(Floats({0.0f, 5.0f, 3.0f, 0.5f, 4.0f, 0.1f, 2.0f, 6.0f, 7.0f, 0.0f}));
  const at::Tensor mask = Mask(10, {5});
  for (RetentionPolicy policy :
       {RetentionPolicy::kExpDecay, RetentionPolicy::kH2O, RetentionPolicy::kTova}) {
    EXPECT_EQ(SelectEvictionVictim(Options(policy, 0.5, 1, 1), stats, Positions(10), mask), 3)
        << RetentionPolicyName(policy);
  }
  // Each policy reads its own statistic.
  const LayerAttentionStats disagree = DisagreeingStats();
  EXPECT_EQ(SelectEvictionVictim(Options(RetentionPolicy::kH2O, 0.5, 0, 0),
                                 LayerAttentionStats{Floats(std::vector<float>(10, 1.0f)),
                                                     disagree.accumulated_mass.neg(),
                                                     Floats(std::vector<float>(10, 1.0f))},
                                 Positions(10), at::Tensor()),
            6);
}

TEST(SelectEvictionVictimTest, SnapKVUsesPooledScores) {
  // Token 1 is low but beside a peak; pooled with kernel 3 it is safe and 4 goes.
  const LayerAttentionStats stats = SameStats(Floats({0.0f, 0.1f, 9.0f, 0.5f, 0.2f, 1.0f, 0.0f}));
  RetentionOptions options = Options(RetentionPolicy::kSnapKV, 0.5, 1, 1);
  EXPECT_EQ(SelectEvictionVictim(options, stats, Positions(7), at::Tensor()), 1);
  options.snapkv_pool_kernel = 3;
  EXPECT_EQ(SelectEvictionVictim(options, stats, Positions(7), at::Tensor()), 4);
}

TEST(SelectEvictionVictimTest, TiesGoToTheLowerIndex) {
  EXPECT_EQ(SelectEvictionVictim(Options(RetentionPolicy::kH2O, 0.5, 2, 2),
                                 SameStats(at::ones({8})), Positions(8), Mask(8, {2})),
            3);
}

TEST(SelectEvictionVictimTest, StreamingEvictsTheOldestFreeToken) {
  const at::Tensor positions = Floats({0, 1, 7, 3, 9, 10}).to(at::kLong);
  EXPECT_EQ(SelectEvictionVictim(Options(RetentionPolicy::kStreaming, 0.5, 1, 2),
                                 LayerAttentionStats(), positions, Mask(6, {1})),
            3);  // position 3, older than index 2's position 7
}

TEST(SelectEvictionVictimTest, NoVictimWhenEverythingIsKept) {
  const LayerAttentionStats stats = SameStats(ScrambledScores(6));
  EXPECT_EQ(SelectEvictionVictim(Options(RetentionPolicy::kH2O, 0.5, 1, 1), stats, Positions(6),
                                 Mask(6, {1, 2, 3, 4})),
            -1);
  EXPECT_EQ(SelectEvictionVictim(Options(RetentionPolicy::kTova, 0.5, 4, 4), stats, Positions(6),
                                 at::Tensor()),
            -1);
  EXPECT_EQ(SelectEvictionVictim(Options(RetentionPolicy::kNone, 0.5, 0, 0), stats, Positions(6),
                                 at::Tensor()),
            -1);
  EXPECT_EQ(SelectEvictionVictim(Options(RetentionPolicy::kH2O, 0.5, 0, 0), SameStats(Floats({})),
                                 Positions(0), at::Tensor()),
            -1);
}

// ---- KeepMerging ----

// A layer of 2 KV heads, head_dim 4, whose tokens are given by their keys and values.
LayerKV SmallLayer(const std::vector<std::vector<float>>& keys,
                   const std::vector<std::vector<float>>& values) {
  const int64_t n = static_cast<int64_t>(keys.size());
  at::Tensor k = at::empty({2, n, 4});
  at::Tensor v = at::empty({2, n, 4});
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t d = 0; d < 4; ++d) {
      for (int64_t h = 0; h < 2; ++h) {
        // The second head sees the negated key: the same similarities, other values.
        k[h][i][d] = (h == 0 ? 1.0f : -1.0f) * keys[i][d];
        v[h][i][d] = values[i][d] + static_cast<float>(h);
      }
    }
  }
  return LayerKV(k, v, at::arange(n, at::kLong));
}

RetentionOptions MergeOptions(int64_t window) {
  RetentionOptions options;
  options.merge_evicted = true;
  options.merge_min_similarity = 0.5;
  options.merge_window = window;
  return options;
}

TEST(KeepMergingTest, OffIsAPlainKeep) {
  LayerKV layer = SmallLayer({{1, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}},
                             {{1, 1, 1, 1}, {3, 3, 3, 3}, {5, 5, 5, 5}});
  RetentionOptions options = MergeOptions(0);
  options.merge_evicted = false;
  KeepMerging(options, at::tensor({0, 2}, at::kLong), at::Tensor(), &layer);
  EXPECT_EQ(layer.size(), 2);
  EXPECT_FALSE(layer.bias().defined());
  EXPECT_EQ(layer.v()[0][0][0].item<float>(), 1.0f);
}

TEST(KeepMergingTest, EvictedTokensJoinTheirMostSimilarKeptKey) {
  // Tokens 1 and 3 are evicted. Token 1's key is token 0's; token 3's is nearest token 2's.
  // Token 4's key is orthogonal to everything: below the similarity floor, it is dropped.
  LayerKV layer =
      SmallLayer({{1, 0, 0, 0}, {2, 0, 0, 0}, {0, 1, 0, 0}, {0, 1, 0.1f, 0}, {0, 0, 0, 1}},
                 {{1, 1, 1, 1}, {3, 3, 3, 3}, {5, 5, 5, 5}, {9, 9, 9, 9}, {7, 7, 7, 7}});
  KeepMerging(MergeOptions(0), at::tensor({0, 2}, at::kLong), at::Tensor(), &layer);
  ASSERT_EQ(layer.size(), 2);
  EXPECT_TRUE(at::equal(layer.positions(), at::tensor({0, 2}, at::kLong)));
  // Without window_mass every merge weighs 1: the mean value, log(2) on the logits.
  for (int64_t h = 0; h < 2; ++h) {
    EXPECT_FLOAT_EQ(layer.v()[h][0][0].item<float>(), 2.0f + static_cast<float>(h));
    EXPECT_FLOAT_EQ(layer.v()[h][1][0].item<float>(), 7.0f + static_cast<float>(h));
    EXPECT_NEAR(layer.bias()[h][0].item<float>(), std::log(2.0f), 1e-6);
    EXPECT_NEAR(layer.bias()[h][1].item<float>(), std::log(2.0f), 1e-6);
  }
  // The keys are the kept tokens' own.
  EXPECT_FLOAT_EQ(layer.k()[0][0][0].item<float>(), 1.0f);
}

TEST(KeepMergingTest, WindowMassWeighsEachMergeAndCapsItAtOne) {
  LayerKV layer = SmallLayer({{1, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}, {0, 1, 0, 0}},
                             {{0, 0, 0, 0}, {4, 4, 4, 4}, {0, 0, 0, 0}, {4, 4, 4, 4}});
  // Token 1 drew a quarter of token 0's attention, token 3 twice token 2's (capped at 1).
  const at::Tensor mass = at::tensor({0.4f, 0.1f, 0.2f, 0.4f});
  KeepMerging(MergeOptions(0), at::tensor({0, 2}, at::kLong), mass, &layer);
  EXPECT_FLOAT_EQ(layer.v()[0][0][0].item<float>(), 4.0f * 0.25f / 1.25f);
  EXPECT_NEAR(layer.bias()[0][0].item<float>(), std::log(1.25f), 1e-6);
  EXPECT_FLOAT_EQ(layer.v()[0][1][0].item<float>(), 2.0f);
  EXPECT_NEAR(layer.bias()[0][1].item<float>(), std::log(2.0f), 1e-6);
}

TEST(KeepMergingTest, TheWindowLimitsCandidatesToNearbyKeptTokens) {
  // Token 3 duplicates token 0, far away in position; its neighbours are orthogonal to it.
  LayerKV all = SmallLayer({{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {1, 0, 0, 0}},
                           {{1, 1, 1, 1}, {2, 2, 2, 2}, {3, 3, 3, 3}, {5, 5, 5, 5}});
  LayerKV windowed = SmallLayer({{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {1, 0, 0, 0}},
                                {{1, 1, 1, 1}, {2, 2, 2, 2}, {3, 3, 3, 3}, {5, 5, 5, 5}});
  const at::Tensor keep = at::tensor({0, 1, 2}, at::kLong);
  KeepMerging(MergeOptions(0), keep, at::Tensor(), &all);
  KeepMerging(MergeOptions(2), keep, at::Tensor(), &windowed);
  EXPECT_FLOAT_EQ(all.v()[0][0][0].item<float>(), 3.0f);  // merged into token 0
  // Within 2 kept tokens of it (1 and 2) nothing is similar enough: dropped, nothing changed.
  EXPECT_FLOAT_EQ(windowed.v()[0][0][0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(windowed.bias().abs().sum().item<float>(), 0.0f);
}

TEST(KeepMergingTest, TheWindowedSearchMatchesABruteForceOneOnScatteredEvictions) {
  // Evicted tokens in clusters with long kept runs between them, so the search's blocks of
  // evicted tokens end early and rows land in blocks of every size: each must still merge
  // into the most similar of its own window's kept keys, per head, as a direct search does.
  constexpr int64_t kHeads = 3, kTokens = 400, kDim = 8, kWindow = 4;
  at::manual_seed(7);
  const at::Tensor k = at::randn({kHeads, kTokens, kDim});
  const at::Tensor v = at::randn({kHeads, kTokens, kDim});
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < kTokens; ++i) {
    const bool evicted = (i % 97 < 5) || (i % 61 == 30) || (i >= 300 && i % 3 == 0);
    if (!evicted) kept.push_back(i);
  }
  const int64_t m = static_cast<int64_t>(kept.size());
  RetentionOptions options = MergeOptions(kWindow);
  options.merge_min_similarity = 0.2;
  LayerKV layer(k.clone(), v.clone(), at::arange(kTokens, at::kLong));
  KeepMerging(options, at::tensor(kept, at::kLong), at::Tensor(), &layer);

  // The reference: the definition, one evicted token and one head at a time.
  at::Tensor expected_sum = v.index_select(1, at::tensor(kept, at::kLong)).clone();
  at::Tensor count = at::zeros({kHeads, m});
  int64_t merges = 0;
  for (int64_t i = 0, next = 0; i < kTokens; ++i) {
    if (next < m && kept[static_cast<size_t>(next)] == i) {
      ++next;
      continue;
    }
    const int64_t first = std::clamp<int64_t>(next - kWindow / 2, 0, m - kWindow);
    for (int64_t h = 0; h < kHeads; ++h) {
      const at::Tensor e = k[h][i] / k[h][i].norm();
      int64_t best = -1;
      float best_sim = -2;
      for (int64_t c = first; c < first + kWindow; ++c) {
        const at::Tensor key = k[h][kept[static_cast<size_t>(c)]];
        const float sim = (e * key / key.norm()).sum().item<float>();
        if (sim > best_sim) {
          best_sim = sim;
          best = c;
        }
      }
      if (best_sim >= options.merge_min_similarity) {
        expected_sum[h][best] += v[h][i];
        count[h][best] += 1;
        ++merges;
      }
    }
  }
  ASSERT_GT(merges, 50);  // the case is not vacuous
  ASSERT_EQ(layer.size(), m);
  EXPECT_TRUE(at::allclose(layer.v(), expected_sum / (1 + count).unsqueeze(-1), 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(layer.bias(), at::log1p(count), 1e-6, 1e-6));
}

TEST(KeepMergingTest, WithWindowMassAtMostAsManyEvictedMergeAsAreKept) {
  // One kept token, three evicted duplicates of it: only the most attended one merges.
  LayerKV layer = SmallLayer({{1, 0, 0, 0}, {1, 0, 0, 0}, {1, 0, 0, 0}, {1, 0, 0, 0}},
                             {{0, 0, 0, 0}, {1, 1, 1, 1}, {2, 2, 2, 2}, {3, 3, 3, 3}});
  const at::Tensor mass = at::tensor({1.0f, 0.2f, 0.5f, 0.1f});
  KeepMerging(MergeOptions(0), at::tensor({0}, at::kLong), mass, &layer);
  EXPECT_FLOAT_EQ(layer.v()[0][0][0].item<float>(), 2.0f * 0.5f / 1.5f);
  EXPECT_NEAR(layer.bias()[0][0].item<float>(), std::log(1.5f), 1e-6);
}

}  // namespace
}  // namespace semshare
