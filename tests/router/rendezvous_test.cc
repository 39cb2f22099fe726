#include "router/rendezvous.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace semshare::router {
namespace {

std::vector<ShardView> Shards(int n) {
  std::vector<ShardView> shards;
  for (int i = 0; i < n; ++i) shards.push_back({absl::StrCat("10.0.0.", i + 1, ":7000"), true});
  return shards;
}

std::string OwnerOf(const std::vector<ShardView>& shards, const std::string& tenant,
                    const std::string& id) {
  absl::StatusOr<size_t> index = PlaceReference(shards, tenant, id);
  EXPECT_TRUE(index.ok()) << index.status();
  return index.ok() ? shards[*index].address : "";
}

TEST(RendezvousTest, WeightIsStableAndSeparatesParts) {
  // Pinned: every router and every release must place a key on the same shard.
  EXPECT_EQ(RendezvousWeight("a:1", "t", "r"), RendezvousWeight("a:1", "t", "r"));
  EXPECT_NE(RendezvousWeight("a:1", "t", "r"), RendezvousWeight("a:1", "tr", ""));
  EXPECT_NE(RendezvousWeight("a:1", "t", "r"), RendezvousWeight("a:1t", "", "r"));
  EXPECT_NE(RendezvousWeight("a:1", "t", "r"), RendezvousWeight("a:2", "t", "r"));
}

TEST(RendezvousTest, RankIsAPermutationStartingWithThePlacement) {
  const std::vector<ShardView> shards = Shards(5);
  const std::vector<size_t> rank = RankShards(shards, "acme", "ref-1");
  ASSERT_EQ(rank.size(), 5u);
  EXPECT_THAT(rank, ::testing::UnorderedElementsAre(0, 1, 2, 3, 4));
  EXPECT_EQ(*PlaceReference(shards, "acme", "ref-1"), rank[0]);
  for (size_t i = 1; i < rank.size(); ++i) {
    EXPECT_GE(RendezvousWeight(shards[rank[i - 1]].address, "acme", "ref-1"),
              RendezvousWeight(shards[rank[i]].address, "acme", "ref-1"));
  }
}

TEST(RendezvousTest, IndependentOfShardOrder) {
  std::vector<ShardView> shards = Shards(4);
  std::vector<ShardView> reversed(shards.rbegin(), shards.rend());
  for (int k = 0; k < 200; ++k) {
    const std::string id = absl::StrCat("ref-", k);
    EXPECT_EQ(OwnerOf(shards, "acme", id), OwnerOf(reversed, "acme", id));
  }
}

TEST(RendezvousTest, SpreadsKeysEvenly) {
  const std::vector<ShardView> shards = Shards(4);
  std::map<std::string, int> count;
  constexpr int kKeys = 4000;
  for (int k = 0; k < kKeys; ++k) ++count[OwnerOf(shards, "acme", absl::StrCat("ref-", k))];
  ASSERT_EQ(count.size(), 4u);
  for (const auto& [address, n] : count) {
    EXPECT_GT(n, kKeys / 4 * 8 / 10) << address;  // within 20% of a fair share
    EXPECT_LT(n, kKeys / 4 * 12 / 10) << address;
  }
}

TEST(RendezvousTest, TenantIsPartOfTheKey) {
  const std::vector<ShardView> shards = Shards(8);
  int differ = 0;
  for (int k = 0; k < 100; ++k) {
    const std::string id = absl::StrCat("ref-", k);
    differ += OwnerOf(shards, "acme", id) != OwnerOf(shards, "globex", id);
  }
  EXPECT_GT(differ, 50);  // 7/8 expected
}

TEST(RendezvousTest, RemovingAShardMovesOnlyItsKeys) {
  const std::vector<ShardView> all = Shards(5);
  std::vector<ShardView> without = all;
  const std::string removed = without[2].address;
  without.erase(without.begin() + 2);
  int moved = 0;
  for (int k = 0; k < 2000; ++k) {
    const std::string id = absl::StrCat("ref-", k);
    const std::string before = OwnerOf(all, "acme", id);
    const std::string after = OwnerOf(without, "acme", id);
    if (before != removed) {
      EXPECT_EQ(before, after) << id;
    } else {
      ++moved;
      EXPECT_NE(after, removed);
    }
  }
  EXPECT_GT(moved, 0);
}

TEST(RendezvousTest, AddingAShardTakesKeysOnlyForItself) {
  const std::vector<ShardView> before = Shards(4);
  const std::vector<ShardView> after = Shards(5);
  for (int k = 0; k < 2000; ++k) {
    const std::string id = absl::StrCat("ref-", k);
    const std::string owner = OwnerOf(after, "acme", id);
    if (owner != after[4].address) {
      EXPECT_EQ(owner, OwnerOf(before, "acme", id)) << id;
    }
  }
}

TEST(RendezvousTest, DownShardsAreSkippedLikeRemovedOnes) {
  std::vector<ShardView> shards = Shards(5);
  std::vector<ShardView> without = shards;
  without.erase(without.begin() + 1);
  shards[1].up = false;
  for (int k = 0; k < 500; ++k) {
    const std::string id = absl::StrCat("ref-", k);
    EXPECT_EQ(OwnerOf(shards, "acme", id), OwnerOf(without, "acme", id)) << id;
  }
}

TEST(RendezvousTest, NoShardUpIsUnavailable) {
  std::vector<ShardView> shards = Shards(2);
  for (ShardView& shard : shards) shard.up = false;
  EXPECT_TRUE(absl::IsUnavailable(PlaceReference(shards, "acme", "r").status()));
  EXPECT_TRUE(absl::IsUnavailable(PlaceReference({}, "acme", "r").status()));
  EXPECT_TRUE(RankShards({}, "acme", "r").empty());
}

}  // namespace
}  // namespace semshare::router
