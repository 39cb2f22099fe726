#include "common/token_mapping.h"

#include <cstdlib>
#include <limits>
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

// The sequential rule the scan must reproduce whatever instructions it uses.
void NaiveNearest(const TokenCodes& target, const TokenCodes& reference, int64_t i, int32_t* best_j,
                  int32_t* best_d) {
  *best_d = std::numeric_limits<int32_t>::max();
  *best_j = 0;
  for (int64_t j = 0; j < reference.size(); ++j) {
    const int32_t d = HammingDistance(target.code(i), reference.code(j), target.words_per_code());
    if (d < *best_d || (d == *best_d && std::llabs(j - i) < std::llabs(*best_j - i))) {
      *best_d = d;
      *best_j = static_cast<int32_t>(j);
    }
  }
}

TEST(TokenMappingTest, MatchesSequentialRuleWithManyTies) {
  for (int32_t nbits : {64, 100, 256, 512}) {
    for (int threads : {1, 2}) {
      // Codes drawn from a few values so equal distances (ties) are everywhere; sizes that
      // are not multiples of the vector width.
      TokenCodes target = RandomCodes(37, nbits, 11);
      TokenCodes reference = RandomCodes(53, nbits, 12);
      for (int64_t t = 0; t < target.size(); ++t) {
        for (int32_t w = 0; w < target.words_per_code(); ++w) {
          target.words[t * target.words_per_code() + w] &= 0x7;
        }
      }
      for (int64_t t = 0; t < reference.size(); ++t) {
        for (int32_t w = 0; w < reference.words_per_code(); ++w) {
          reference.words[t * reference.words_per_code() + w] &= 0x7;
        }
      }
      MappingOptions options;
      options.num_threads = threads;
      absl::StatusOr<TokenMapping> mapping = MapTokens(target, reference, options);
      ASSERT_TRUE(mapping.ok());
      for (int64_t i = 0; i < target.size(); ++i) {
        int32_t j = 0, d = 0;
        NaiveNearest(target, reference, i, &j, &d);
        EXPECT_EQ(mapping->source[i], j) << nbits << " bits, token " << i;
        EXPECT_EQ(mapping->distance[i], d) << nbits << " bits, token " << i;
      }
    }
  }
}

TEST(TokenMappingTest, MatchesSequentialRuleOnRandomCodes) {
  const TokenCodes target = RandomCodes(300, 256, 21);
  const TokenCodes reference = RandomCodes(1001, 256, 22);
  absl::StatusOr<TokenMapping> mapping = MapTokens(target, reference, MappingOptions{});
  ASSERT_TRUE(mapping.ok());
  for (int64_t i = 0; i < target.size(); ++i) {
    int32_t j = 0, d = 0;
    NaiveNearest(target, reference, i, &j, &d);
    ASSERT_EQ(mapping->source[i], j) << i;
    ASSERT_EQ(mapping->distance[i], d) << i;
  }
}

}  // namespace
}  // namespace semshare
