#include "router/worker_choice.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace semshare::router {
namespace {

WorkerView Worker(const std::string& address, int32_t in_flight, int32_t capacity,
                  std::vector<std::string> cached_ids = {}, const std::string& tenant = "acme") {
  WorkerView w;
  w.address = address;
  w.in_flight = in_flight;
  w.capacity = capacity;
  for (const std::string& id : cached_ids)
    w.cached_references.insert(CachedReferenceKey(tenant, id));
  return w;
}

WorkerRequest Hit(const std::string& id, absl::Span<const size_t> exclude = {}) {
  return WorkerRequest{"acme", id, exclude};
}

WorkerRequest Miss(absl::Span<const size_t> exclude = {}) {
  return WorkerRequest{"acme", std::nullopt, exclude};
}

size_t Chosen(absl::Span<const WorkerView> workers, const WorkerRequest& request) {
  absl::StatusOr<WorkerChoice> choice = ChooseWorker(workers, request);
  EXPECT_TRUE(choice.ok()) << choice.status();
  return choice.ok() ? choice->index : workers.size();
}

TEST(WorkerChoiceTest, MissGoesToTheLeastLoaded) {
  const std::vector<WorkerView> workers = {Worker("w0", 3, 4), Worker("w1", 1, 4),
                                           Worker("w2", 2, 4)};
  EXPECT_EQ(Chosen(workers, Miss()), 1u);
}

TEST(WorkerChoiceTest, LoadIsRelativeToCapacity) {
  // 3/8 < 1/2: the bigger worker with more requests is the less loaded.
  const std::vector<WorkerView> workers = {Worker("w0", 1, 2), Worker("w1", 3, 8)};
  EXPECT_EQ(Chosen(workers, Miss()), 1u);
}

TEST(WorkerChoiceTest, LessReservedKvIsLessLoaded) {
  std::vector<WorkerView> workers = {Worker("w0", 1, 4), Worker("w1", 1, 4)};
  workers[0].kv_reserved_share = 0.6;  // w0's requests hold long prompts
  workers[1].kv_reserved_share = 0.1;
  EXPECT_EQ(Chosen(workers, Miss()), 1u);
  // The router's own calls since the last report count too: a burst spreads out.
  workers[1].in_flight = 4;
  EXPECT_EQ(Chosen(workers, Miss()), 0u);
}

TEST(WorkerChoiceTest, HolderWinsOverLessLoadedWorkers) {
  const std::vector<WorkerView> workers = {Worker("w0", 0, 4), Worker("w1", 3, 4, {"ref"}),
                                           Worker("w2", 0, 4)};
  absl::StatusOr<WorkerChoice> choice = ChooseWorker(workers, Hit("ref"));
  ASSERT_TRUE(choice.ok());
  EXPECT_EQ(choice->index, 1u);
  EXPECT_TRUE(choice->holds_reference);
  // A miss ignores what workers hold.
  EXPECT_EQ(Chosen(workers, Miss()), 0u);
}

TEST(WorkerChoiceTest, AmongHoldersTheLeastLoaded) {
  const std::vector<WorkerView> workers = {Worker("w0", 2, 4, {"ref"}), Worker("w1", 0, 4),
                                           Worker("w2", 1, 4, {"ref"})};
  EXPECT_EQ(Chosen(workers, Hit("ref")), 2u);
}

TEST(WorkerChoiceTest, SaturatedHolderLosesToAFreeWorker) {
  const std::vector<WorkerView> workers = {Worker("w0", 4, 4, {"ref"}), Worker("w1", 1, 4)};
  absl::StatusOr<WorkerChoice> choice = ChooseWorker(workers, Hit("ref"));
  ASSERT_TRUE(choice.ok());
  EXPECT_EQ(choice->index, 1u);
  EXPECT_FALSE(choice->holds_reference);
}

TEST(WorkerChoiceTest, WhenAllAreSaturatedAHolderWinsATie) {
  const std::vector<WorkerView> workers = {Worker("w0", 4, 4), Worker("w1", 4, 4, {"ref"}),
                                           Worker("w2", 5, 4)};
  EXPECT_EQ(Chosen(workers, Hit("ref")), 1u);
}

TEST(WorkerChoiceTest, CacheIsPerTenant) {
  const std::vector<WorkerView> workers = {Worker("w0", 0, 4),
                                           Worker("w1", 2, 4, {"ref"}, "globex")};
  absl::StatusOr<WorkerChoice> choice = ChooseWorker(workers, Hit("ref"));
  ASSERT_TRUE(choice.ok());
  EXPECT_EQ(choice->index, 0u);
  EXPECT_FALSE(choice->holds_reference);
  EXPECT_NE(CachedReferenceKey("a", "b/c"), CachedReferenceKey("a/b", "c"));
}

TEST(WorkerChoiceTest, SkipsDownExcludedAndZeroCapacityWorkers) {
  std::vector<WorkerView> workers = {Worker("w0", 0, 4, {"ref"}), Worker("w1", 0, 0),
                                     Worker("w2", 3, 4), Worker("w3", 2, 4)};
  workers[0].up = false;
  EXPECT_EQ(Chosen(workers, Hit("ref")), 3u);
  const std::vector<size_t> tried = {3};
  EXPECT_EQ(Chosen(workers, Hit("ref", tried)), 2u);  // a retry goes elsewhere
  const std::vector<size_t> all = {2, 3};
  EXPECT_TRUE(absl::IsUnavailable(ChooseWorker(workers, Hit("ref", all)).status()));
  EXPECT_TRUE(absl::IsUnavailable(ChooseWorker({}, Miss()).status()));
}

TEST(WorkerChoiceTest, TiesGoToTheSmallerAddressWhateverTheOrder) {
  std::vector<WorkerView> workers = {Worker("w2", 1, 4), Worker("w0", 2, 8), Worker("w1", 1, 4)};
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(workers[Chosen(workers, Miss())].address, "w0");
    std::rotate(workers.begin(), workers.begin() + 1, workers.end());
  }
}

}  // namespace
}  // namespace semshare::router
