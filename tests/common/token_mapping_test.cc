#include "common/token_mapping.h"

#include <random>

#include "gtest/gtest.h"

namespace semshare {
namespace {

TokenCodes RandomCodes(int64_t n, int32_t nbits, uint64_t seed) {
  TokenCodes codes;
  codes.nbits = nbits;
  std::mt19937_64 rng(seed);
  codes.words.resize(static_cast<size_t>(n * codes.words_per_code()));
  for (uint64_t& w : codes.words) w = rng();
  return codes;
}

TEST(TokenMappingTest, IdenticalCodesMapToThemselves) {
  const TokenCodes codes = RandomCodes(300, 256, 1);
  absl::StatusOr<TokenMapping> mapping = MapTokens(codes, codes, MappingOptions{});
  ASSERT_TRUE(mapping.ok());
  EXPECT_DOUBLE_EQ(mapping->similarity, 1.0);
  for (int i = 0; i < 300; ++i) EXPECT_EQ(mapping->source[i], i);
  EXPECT_EQ(mapping->num_unmatched, 0);
}

TEST(TokenMappingTest, DuplicateCodesTieToNearestPosition) {
  // Every reference token has the same code: target i must take reference i (nearest place).
  TokenCodes reference;
  reference.nbits = 64;
  reference.words.assign(10, 0xabcdefULL);
  TokenCodes target;
  target.nbits = 64;
  target.words.assign(7, 0xabcdefULL);
  absl::StatusOr<TokenMapping> mapping = MapTokens(target, reference, MappingOptions{});
  ASSERT_TRUE(mapping.ok());
  for (int i = 0; i < 7; ++i) EXPECT_EQ(mapping->source[i], i);
}

TEST(TokenMappingTest, FindsShiftedTokensAndFlagsUnmatched) {
  const TokenCodes reference = RandomCodes(100, 256, 2);
  // Target: reference shifted right by 5 with 5 fresh random tokens in front.
  TokenCodes target = RandomCodes(5, 256, 3);
  target.words.insert(target.words.end(), reference.words.begin(), reference.words.end());
  MappingOptions options;
  absl::StatusOr<TokenMapping> mapping = MapTokens(target, reference, options);
  ASSERT_TRUE(mapping.ok());
  for (int i = 5; i < 105; ++i) EXPECT_EQ(mapping->source[i], i - 5);
  // Random 256-bit codes are ~128 bits apart: the five fresh tokens are unmatched.
  EXPECT_EQ(mapping->num_unmatched, 5);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(mapping->unmatched[i]);
  EXPECT_NEAR(mapping->similarity, 100.0 / 105.0, 1e-9);  // normalised distance clips at 1
}

TEST(TokenMappingTest, SimilarityFollowsDistanceNorm) {
  TokenCodes reference;
  reference.nbits = 64;
  reference.words = {0};
  TokenCodes target;
  target.nbits = 64;
  target.words = {0xfULL};  // 4 bits apart
  MappingOptions options;
  options.distance_norm = 8;
  EXPECT_NEAR(MapTokens(target, reference, options)->similarity, 0.5, 1e-12);
}

TEST(TokenMappingTest, RejectsMismatchedOrEmptyInput) {
  EXPECT_FALSE(MapTokens(RandomCodes(3, 128, 1), RandomCodes(3, 256, 1), MappingOptions{}).ok());
  EXPECT_FALSE(MapTokens(RandomCodes(0, 256, 1), RandomCodes(3, 256, 1), MappingOptions{}).ok());
  MappingOptions bad;
  bad.distance_norm = 0;
  EXPECT_FALSE(MapTokens(RandomCodes(3, 256, 1), RandomCodes(3, 256, 1), bad).ok());
  EXPECT_FALSE(ParseMappingMode("fuzzy").ok());
}

TEST(TokenMappingTest, RandomMappingIsSeededAndInRange) {
  const TokenCodes codes = RandomCodes(50, 256, 4);
  MappingOptions options;
  options.mode = MappingMode::kRandom;
  absl::StatusOr<TokenMapping> a = MapTokens(codes, codes, options);
  absl::StatusOr<TokenMapping> b = MapTokens(codes, codes, options);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->source, b->source);
  int identity = 0;
  for (int i = 0; i < 50; ++i) {
    EXPECT_GE(a->source[i], 0);
    EXPECT_LT(a->source[i], 50);
    identity += a->source[i] == i;
  }
  EXPECT_LT(identity, 10);
}

// Whatever scan the CPU gets (AVX-512, popcnt or portable), the result must equal the
// definition: smallest distance, then nearest position, then the earlier reference token.
TEST(TokenMappingTest, MatchesBruteForceDefinitionWithManyTies) {
  for (int32_t nbits : {64, 128, 256, 512}) {
    // Codes drawn from a small pool, so equal distances are common; odd sizes exercise tails.
    const TokenCodes pool = RandomCodes(5, nbits, 11);
    auto draw = [&](int64_t n, uint64_t seed) {
      std::mt19937_64 rng(seed);
      TokenCodes codes;
      codes.nbits = nbits;
      for (int64_t t = 0; t < n; ++t) {
        const uint64_t* c = pool.code(static_cast<int64_t>(rng() % 5));
        codes.words.insert(codes.words.end(), c, c + pool.words_per_code());
      }
      return codes;
    };
    const TokenCodes target = draw(203, 1);
    const TokenCodes reference = draw(157, 2);
    absl::StatusOr<TokenMapping> mapping = MapTokens(target, reference, MappingOptions{});
    ASSERT_TRUE(mapping.ok());
    for (int64_t i = 0; i < target.size(); ++i) {
      int64_t best = -1;
      int32_t best_d = 0;
      for (int64_t j = 0; j < reference.size(); ++j) {
        const int32_t d = HammingDistance(target.code(i), reference.code(j), target.words_per_code());
        if (best < 0 || d < best_d || (d == best_d && std::llabs(j - i) < std::llabs(best - i))) {
          best = j;
          best_d = d;
        }
      }
      ASSERT_EQ(mapping->source[i], best) << "nbits " << nbits << " token " << i;
      ASSERT_EQ(mapping->distance[i], best_d);
    }
  }
}

}  // namespace
}  // namespace semshare
