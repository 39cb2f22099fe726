#include "router/reference_choice.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace semshare::router {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kTargetTokens = 4;

// A well-formed reply whose best match is `id` at `similarity` (and `more` lower matches).
ShardFindReply Reply(const std::string& shard, const std::string& id, double similarity,
                     std::vector<cache_node::Match> more = {}) {
  cache_node::FindResult result;
  result.matches.push_back({id, similarity, 10});
  for (auto& m : more) result.matches.push_back(m);
  result.best_mapping.similarity = similarity;
  result.best_mapping.source = {0, 1, 2, 9};
  result.best_mapping.distance = {0, 0, 3, 1};
  result.best_mapping.unmatched = {0, 0, 0, 0};
  return {shard, std::move(result)};
}

ShardFindReply Empty(const std::string& shard) { return {shard, cache_node::FindResult{}}; }

ShardFindReply Failed(const std::string& shard) {
  return {shard, absl::DeadlineExceededError("FindSimilar timed out")};
}

TEST(EffectiveThresholdTest, RequestOverridesDefault) {
  EXPECT_DOUBLE_EQ(*EffectiveThreshold(std::nullopt, 0.8), 0.8);
  EXPECT_DOUBLE_EQ(*EffectiveThreshold(0.5, 0.8), 0.5);
  EXPECT_DOUBLE_EQ(*EffectiveThreshold(0.0, 0.8), 0.0);
  EXPECT_DOUBLE_EQ(*EffectiveThreshold(1.0, 0.8), 1.0);
}

TEST(EffectiveThresholdTest, OutOfRangeIsInvalidAndSaysWhose) {
  const absl::Status request = EffectiveThreshold(1.5, 0.8).status();
  EXPECT_TRUE(absl::IsInvalidArgument(request));
  EXPECT_THAT(request.message(), HasSubstr("request"));
  const absl::Status config = EffectiveThreshold(std::nullopt, -0.1).status();
  EXPECT_TRUE(absl::IsInvalidArgument(config));
  EXPECT_THAT(config.message(), HasSubstr("configured"));
  EXPECT_FALSE(EffectiveThreshold(std::numeric_limits<double>::quiet_NaN(), 0.8).ok());
}

TEST(ChooseReferenceTest, PicksTheBestAcrossShards) {
  const std::vector<ShardFindReply> replies = {Reply("s1", "a", 0.85), Reply("s2", "b", 0.93),
                                               Reply("s3", "c", 0.90)};
  const ReferenceSearch search = ChooseReference(replies, kTargetTokens, 0.8);
  ASSERT_TRUE(search.choice.has_value());
  EXPECT_EQ(search.choice->shard, "s2");
  EXPECT_EQ(search.choice->reply_index, 1u);
  EXPECT_EQ(search.choice->reference_id, "b");
  EXPECT_DOUBLE_EQ(search.choice->similarity, 0.93);
  EXPECT_EQ(search.choice->reference_tokens, 10);
  EXPECT_EQ(search.choice->mapping.source, std::vector<int32_t>({0, 1, 2, 9}));
  EXPECT_EQ(search.shards_answered, 3);
  EXPECT_EQ(search.shards_failed, 0);
  EXPECT_DOUBLE_EQ(search.best_similarity, 0.93);
}

TEST(ChooseReferenceTest, ThresholdIsInclusiveAndBelowIsAMiss) {
  const std::vector<ShardFindReply> replies = {Reply("s1", "a", 0.8), Reply("s2", "b", 0.7)};
  ReferenceSearch search = ChooseReference(replies, kTargetTokens, 0.8);
  ASSERT_TRUE(search.choice.has_value());
  EXPECT_EQ(search.choice->reference_id, "a");
  search = ChooseReference(replies, kTargetTokens, 0.81);
  EXPECT_FALSE(search.choice.has_value());
  EXPECT_DOUBLE_EQ(search.best_similarity, 0.8);  // reported for the miss
}

TEST(ChooseReferenceTest, FailedAndEmptyShardsCostOnlyAMiss) {
  std::vector<ShardFindReply> replies = {Failed("s1"), Empty("s2"), Failed("s3")};
  ReferenceSearch search = ChooseReference(replies, kTargetTokens, 0.8);
  EXPECT_FALSE(search.choice.has_value());
  EXPECT_EQ(search.shards_failed, 2);
  EXPECT_EQ(search.shards_answered, 1);
  replies.push_back(Reply("s4", "d", 0.9));
  search = ChooseReference(replies, kTargetTokens, 0.8);
  ASSERT_TRUE(search.choice.has_value());
  EXPECT_EQ(search.choice->shard, "s4");
  EXPECT_TRUE(ChooseReference({}, kTargetTokens, 0.8).choice == std::nullopt);
}

TEST(ChooseReferenceTest, TiesAreBrokenByIdThenShardWhateverTheOrder) {
  std::vector<ShardFindReply> replies = {Reply("s3", "b", 0.9), Reply("s2", "a", 0.9),
                                         Reply("s1", "a", 0.9), Reply("s0", "c", 0.9)};
  for (int round = 0; round < 4; ++round) {
    const ReferenceSearch search = ChooseReference(replies, kTargetTokens, 0.5);
    ASSERT_TRUE(search.choice.has_value());
    EXPECT_EQ(search.choice->reference_id, "a");
    EXPECT_EQ(search.choice->shard, "s1");
    EXPECT_EQ(replies[search.choice->reply_index].shard, "s1");
    std::rotate(replies.begin(), replies.begin() + 1, replies.end());
  }
}

TEST(ChooseReferenceTest, GarbageRepliesAreSkipped) {
  std::vector<ShardFindReply> garbage;
  garbage.push_back(Reply("nan", "x", std::nan("")));
  garbage.push_back(Reply("above-one", "x", 1.5));
  garbage.push_back(Reply("negative", "x", -0.1));
  garbage.push_back(Reply("unsorted", "x", 0.85, {{"y", 0.99, 10}}));
  {
    ShardFindReply r = Reply("short-mapping", "x", 0.99);
    r.result->best_mapping.source.pop_back();
    garbage.push_back(std::move(r));
  }
  {
    ShardFindReply r = Reply("out-of-range", "x", 0.99);
    r.result->best_mapping.source[3] = 10;  // reference has 10 tokens
    garbage.push_back(std::move(r));
  }
  {
    ShardFindReply r = Reply("negative-index", "x", 0.99);
    r.result->best_mapping.source[0] = -1;
    garbage.push_back(std::move(r));
  }
  {
    ShardFindReply r = Reply("disagreeing", "x", 0.99);
    r.result->best_mapping.similarity = 0.5;
    garbage.push_back(std::move(r));
  }
  {
    ShardFindReply r = Reply("no-id", "", 0.99);
    garbage.push_back(std::move(r));
  }
  {
    ShardFindReply r = Reply("no-tokens", "x", 0.99);
    r.result->matches[0].num_tokens = 0;
    garbage.push_back(std::move(r));
  }
  const int32_t garbage_count = static_cast<int32_t>(garbage.size());
  garbage.push_back(Reply("good", "g", 0.82));
  const ReferenceSearch search = ChooseReference(garbage, kTargetTokens, 0.8);
  ASSERT_TRUE(search.choice.has_value());
  EXPECT_EQ(search.choice->shard, "good");
  EXPECT_EQ(search.shards_garbage, garbage_count);
  EXPECT_EQ(search.shards_answered, 1);
  EXPECT_DOUBLE_EQ(search.best_similarity, 0.82);
}

TEST(ChooseReferenceTest, LowerMatchesOfAShardAreNotOffered) {
  // Only matches[0] comes with a mapping, so only it can be served.
  const std::vector<ShardFindReply> replies = {Reply("s1", "a", 0.9, {{"b", 0.9, 10}})};
  const ReferenceSearch search = ChooseReference(replies, kTargetTokens, 0.8);
  ASSERT_TRUE(search.choice.has_value());
  EXPECT_EQ(search.choice->reference_id, "a");
}

}  // namespace
}  // namespace semshare::router
