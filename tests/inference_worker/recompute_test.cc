#include "inference_worker/engine/recompute.h"

#include "gtest/gtest.h"

namespace semshare {
namespace {

TEST(RecomputeTest, SharesStartFullAndNeverGrow) {
  RecomputeOptions options;
  const std::vector<double> shares = RecomputeShares(options, 24);
  ASSERT_EQ(shares.size(), 24u);
  EXPECT_EQ(shares[0], 1.0);
  EXPECT_DOUBLE_EQ(shares[1], options.hd_share);
  for (size_t l = 1; l < shares.size(); ++l) {
    EXPECT_LE(shares[l], shares[l - 1]);
    EXPECT_GE(shares[l], options.min_share - 1e-12);
  }
  options.hd_share = 1.0;
  options.decay = 1.0;
  for (double s : RecomputeShares(options, 6)) EXPECT_EQ(s, 1.0);
}

TEST(RecomputeTest, ShrinkKeepsMustKeepThenHighestDeviation) {
  const std::vector<int64_t> current = {2, 3, 5, 7, 11, 13};
  const std::vector<float> deviation = {0.1f, 0.9f, 0.5f, 0.9f, 0.2f, 0.0f};
  const std::vector<uint8_t> must = {0, 0, 0, 0, 0, 1};
  EXPECT_EQ(ShrinkRecomputeSet(current, deviation, must, 3), (std::vector<int64_t>{3, 7, 13}));
  // Ties on deviation go to the lower index; must-keep tokens stay even over the target.
  EXPECT_EQ(ShrinkRecomputeSet(current, deviation, {1, 1, 1, 0, 0, 1}, 2),
            (std::vector<int64_t>{2, 3, 5, 13}));
  // Never grows.
  EXPECT_EQ(ShrinkRecomputeSet(current, deviation, must, 100), current);
}

TEST(RecomputeTest, RejectsBadOptions) {
  RecomputeOptions options;
  options.hd_share = 1.5;
  EXPECT_FALSE(options.Validate().ok());
  options = RecomputeOptions{};
  options.last_tokens = 0;
  EXPECT_FALSE(options.Validate().ok());
}

}  // namespace
}  // namespace semshare
