#include "cache_node/lru_budget.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace semshare::cache_node {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(LruBudgetTest, EvictsLeastRecentlyUsedForTheTotal) {
  LruBudget budget(100, 0);
  budget.Add(1, "a", 30);
  budget.Add(2, "b", 30);
  budget.Add(3, "a", 30);
  EXPECT_EQ(budget.total_bytes(), 90);
  EXPECT_THAT(budget.VictimsFor("a", 10), IsEmpty());
  EXPECT_THAT(budget.VictimsFor("a", 11), ElementsAre(1));
  budget.Touch(1);
  EXPECT_THAT(budget.VictimsFor("b", 40), ElementsAre(2));
  EXPECT_THAT(budget.VictimsFor("b", 70), ElementsAre(2, 3));
  EXPECT_THAT(budget.VictimsFor("b", 80), ElementsAre(2, 3, 1));
}

TEST(LruBudgetTest, TenantBudgetEvictsOnlyThatTenant) {
  LruBudget budget(1000, 50);
  budget.Add(1, "a", 20);
  budget.Add(2, "b", 20);
  budget.Add(3, "a", 20);
  EXPECT_THAT(budget.VictimsFor("a", 20), ElementsAre(1));
  EXPECT_THAT(budget.VictimsFor("b", 30), IsEmpty());
  EXPECT_EQ(budget.tenant_bytes("a"), 40);
  budget.Remove(1);
  budget.Remove(1);  // twice is harmless
  EXPECT_EQ(budget.tenant_bytes("a"), 20);
  EXPECT_EQ(budget.total_bytes(), 40);
}

TEST(LruBudgetTest, BothBudgetsTogether) {
  LruBudget budget(60, 50);
  budget.Add(1, "b", 20);
  budget.Add(2, "a", 20);
  budget.Add(3, "a", 20);
  // a's budget evicts 2; the total then still needs room, so b's 1 goes too.
  EXPECT_THAT(budget.VictimsFor("a", 25), ElementsAre(2, 1));
}

TEST(LruBudgetTest, ACallsTenantBudgetAppliesWithTheNodesSmallerOne) {
  LruBudget budget(1000, 0);
  budget.Add(1, "a", 20);
  budget.Add(2, "a", 20);
  EXPECT_THAT(budget.VictimsFor("a", 20), IsEmpty());           // the node has no tenant budget
  EXPECT_THAT(budget.VictimsFor("a", 20, 50), ElementsAre(1));  // the tenant's own: 50
  EXPECT_EQ(budget.CheckFits(51, 50).code(), absl::StatusCode::kResourceExhausted);
  LruBudget capped(1000, 30);
  capped.Add(1, "a", 20);
  EXPECT_THAT(capped.VictimsFor("a", 20, 500), ElementsAre(1));  // the node's 30 is smaller
  EXPECT_EQ(capped.CheckFits(31, 500).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(capped.CheckFits(30, 0).ok());
}

TEST(LruBudgetTest, RejectsWhatCanNeverFit) {
  LruBudget budget(100, 40);
  EXPECT_TRUE(budget.CheckFits(40).ok());
  EXPECT_EQ(budget.CheckFits(41).code(), absl::StatusCode::kResourceExhausted);
  LruBudget total_only(100, 0);
  EXPECT_EQ(total_only.CheckFits(101).code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace semshare::cache_node
