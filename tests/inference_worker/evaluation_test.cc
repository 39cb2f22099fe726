#include "inference_worker/engine/evaluation.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/inference_worker/test_model_util.h"

namespace semshare {
namespace {

using ::testing::HasSubstr;

// A JSONL file in the test's temporary directory, removed with the object.
class PairsFile {
 public:
  explicit PairsFile(const std::string& text)
      : path_(::testing::TempDir() + "/pairs_" + std::to_string(getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".jsonl") {
    std::ofstream(path_) << text;
  }
  ~PairsFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const char* kPairs =
    R"({"id": "a", "reference": "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.", )"
    R"("target": "It is a truth universally known, that a single man in possession of a large fortune, must be in want of a wife.", )"
    R"("continuation": " However little known the feelings or views of such a man may be on his first entering a neighbourhood"})"
    "\n\n"
    R"({"reference": "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition, seemed to unite some of the best blessings of existence.", )"
    R"("target": "Emma Woodhouse, handsome, clever and rich, with a comfortable home and a happy disposition, seemed to unite some of the best blessings of existence.", )"
    R"("continuation": " She was the youngest of the two daughters of a most affectionate, indulgent father"})"
    "\n";

TEST(EvaluationTest, RougeLF1CountsTheLongestCommonSubsequence) {
  EXPECT_DOUBLE_EQ(RougeLF1({1, 2, 3, 4}, {1, 2, 3, 4}), 1.0);
  // LCS 1 3 4: precision 3/4, recall 3/4.
  EXPECT_DOUBLE_EQ(RougeLF1({1, 2, 3, 4}, {1, 3, 4, 5}), 0.75);
  // LCS 2 of candidate 2 and reference 4: precision 1, recall 1/2, F1 2/3.
  EXPECT_DOUBLE_EQ(RougeLF1({1, 2}, {1, 9, 2, 9}), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(RougeLF1({1, 2}, {3, 4}), 0.0);
  EXPECT_DOUBLE_EQ(RougeLF1({}, {}), 1.0);
  EXPECT_DOUBLE_EQ(RougeLF1({1}, {}), 0.0);
}

TEST(EvaluationTest, SamePrefixTokensStopsAtTheFirstDifference) {
  EXPECT_EQ(SamePrefixTokens({1, 2, 3}, {1, 2, 4}), 2);
  EXPECT_EQ(SamePrefixTokens({1, 2, 3}, {1, 2, 3, 4}), 3);
  EXPECT_EQ(SamePrefixTokens({5}, {1}), 0);
  EXPECT_EQ(SamePrefixTokens({}, {1}), 0);
}

TEST(EvaluationTest, ReadEvalPairsSkipsBlankLinesAndNamesUnnamedPairs) {
  const PairsFile file(kPairs);
  const std::vector<EvalPair> pairs = ReadEvalPairs(file.path()).value();
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].id, "a");
  EXPECT_EQ(pairs[1].id, "line3");
  EXPECT_EQ(pairs[1].continuation.substr(0, 8), " She was");
}

TEST(EvaluationTest, ReadEvalPairsRefusesAPairWithoutATargetNamingTheLine) {
  const PairsFile file("{\"reference\": \"x\", \"continuation\": \"y\"}\n");
  const absl::StatusOr<std::vector<EvalPair>> pairs = ReadEvalPairs(file.path());
  ASSERT_FALSE(pairs.ok());
  EXPECT_NE(pairs.status().message().find(":1:"), std::string::npos) << pairs.status();
  EXPECT_NE(pairs.status().message().find("target"), std::string::npos) << pairs.status();
}

TEST(EvaluationTest, FullPrefillWithoutRetentionAgreesWithItselfEverywhere) {
  auto engine = Engine::Create(&AustenModel()).value();
  const PairsFile file(kPairs);
  ReuseOptions full;
  full.method = ReuseMethod::kFull;
  full.retention = RetentionOptions{};
  FidelityOptions options;
  options.generate_tokens = 16;
  const Json result =
      RunFidelity(*engine, ReadEvalPairs(file.path()).value(), full, options).value();
  ASSERT_EQ(result["pairs"].array_items().size(), 2u);
  for (const Json& row : result["pairs"].array_items()) {
    EXPECT_DOUBLE_EQ(row["rouge_l"].number_value(), 1.0);
    EXPECT_EQ(row["same_prefix_tokens"].number_value(), 16);
    // Teacher forcing along its own greedy tokens gives back exactly those tokens.
    EXPECT_DOUBLE_EQ(row["top1_agree"].number_value(), 1.0);
    EXPECT_NEAR(row["ppl_ratio"].number_value(), 1.0, 1e-9);
    EXPECT_FALSE(row["hit"].bool_value());
  }
  EXPECT_DOUBLE_EQ(result["summary"]["top1_agree_mean_all_pairs"].number_value(), 1.0);
}

TEST(EvaluationTest, HeavyPruningLowersTeacherForcedAgreement) {
  auto engine = Engine::Create(&AustenModel()).value();
  const PairsFile file(kPairs);
  ReuseOptions pruned;
  pruned.method = ReuseMethod::kFull;
  pruned.retention.policy = RetentionPolicy::kStreaming;
  pruned.retention.sink_tokens = 1;
  pruned.retention.recent_window = 2;
  pruned.retention.decode_eviction = true;
  FidelityOptions options;
  options.generate_tokens = 16;
  const Json result =
      RunFidelity(*engine, ReadEvalPairs(file.path()).value(), pruned, options).value();
  const double agree = result["summary"]["top1_agree_mean_all_pairs"].number_value();
  EXPECT_LT(agree, 1.0);
  EXPECT_GE(agree, 0.0);
  for (const Json& row : result["pairs"].array_items()) {
    EXPECT_LE(row["same_prefix_tokens"].number_value(), 16);
    EXPECT_LT(row["kv_kept_share"].number_value(), 0.5);
  }
}

// Bad options are clear errors before any work: a negative continuation length used to abort
// the process in std::vector::resize.
TEST(EvaluationTest, BadOptionsAreClearErrors) {
  auto engine = Engine::Create(&AustenModel()).value();
  const PairsFile file(kPairs);
  const std::vector<EvalPair> pairs = ReadEvalPairs(file.path()).value();
  const ReuseOptions reuse;
  FidelityOptions fidelity;
  fidelity.continuation_tokens = -1;
  absl::Status status = RunFidelity(*engine, pairs, reuse, fidelity).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("continuation_tokens"));
  fidelity = FidelityOptions{};
  fidelity.generate_tokens = 0;
  EXPECT_THAT(RunFidelity(*engine, pairs, reuse, fidelity).status().message(),
              HasSubstr("generate_tokens"));
  fidelity = FidelityOptions{};
  fidelity.max_pairs = -1;
  EXPECT_THAT(RunFidelity(*engine, pairs, reuse, fidelity).status().message(),
              HasSubstr("max_pairs"));
  EXPECT_THAT(RunRopeAblation(*engine, pairs, reuse, -1).status().message(),
              HasSubstr("max_pairs"));

  TtftOptions ttft;
  ttft.lengths = {64};
  ttft.repeats = 0;
  EXPECT_THAT(RunTtftSweep(*engine, reuse, ttft).status().message(), HasSubstr("repeats"));
  ttft.repeats = 1;
  ttft.lengths = {};
  EXPECT_THAT(RunTtftSweep(*engine, reuse, ttft).status().message(),
              HasSubstr("no prompt lengths"));
  ttft.lengths = {64, 1};
  EXPECT_THAT(RunTtftSweep(*engine, reuse, ttft).status().message(), HasSubstr("length 1"));
  ttft.lengths = {64};
  ttft.edit_share = 1.0;
  EXPECT_THAT(RunTtftSweep(*engine, reuse, ttft).status().message(), HasSubstr("edit_share"));
}

}  // namespace
}  // namespace semshare
