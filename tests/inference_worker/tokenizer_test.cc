#include "inference_worker/engine/tokenizer.h"

#include <cstdio>
#include <string>

#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace semshare {
namespace {

using ::testing::HasSubstr;

const std::string kAustenDir = JoinPath(SEMSHARE_TEST_DATA_DIR, "austen-5m");

// A fresh directory under the test temp dir.
std::string MakeTestDir(const std::string& name) {
  const std::string dir = JoinPath(::testing::TempDir(), "semshare_tokenizer_test_" + name);
  std::remove(JoinPath(dir, "tokenizer.model").c_str());
  std::remove(JoinPath(dir, "tokenizer.json").c_str());
  EXPECT_TRUE(MakeDirectories(dir).ok());
  return dir;
}

// The smallest byte-level tokenizer.json: two characters and one merge.
constexpr char kTinyTokenizerJson[] = R"({
  "added_tokens": [{"id": 3, "content": "</s>", "special": true}],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
  "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
})";

TEST(LoadTokenizerTest, LoadsTheSentencePieceModel) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(kAustenDir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), 4096);
  EXPECT_EQ((*tokenizer)->bos_id(), 1);
  EXPECT_EQ((*tokenizer)->eos_id(), 2);
  absl::StatusOr<std::vector<int32_t>> ids = (*tokenizer)->Encode("The carriage stopped");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ((*tokenizer)->Decode(*ids), "The carriage stopped");
}

TEST(LoadTokenizerTest, FallsBackToTokenizerJson) {
  const std::string dir = MakeTestDir("json");
  ASSERT_TRUE(WriteStringToFile(JoinPath(dir, "tokenizer.json"), kTinyTokenizerJson).ok());
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), 4);
  EXPECT_EQ((*tokenizer)->bos_id(), -1);
  EXPECT_EQ((*tokenizer)->eos_id(), 3);
  EXPECT_EQ((*tokenizer)->Encode("abba</s>").value(), (std::vector<int32_t>{2, 1, 0, 3}));
}

TEST(LoadTokenizerTest, UnparsableModelBesideJsonUsesTheJson) {
  // Meta's Llama-3 downloads name a tiktoken file tokenizer.model.
  const std::string dir = MakeTestDir("tiktoken");
  ASSERT_TRUE(WriteStringToFile(JoinPath(dir, "tokenizer.model"), "IQ== 0\nIg== 1\n").ok());
  ASSERT_TRUE(WriteStringToFile(JoinPath(dir, "tokenizer.json"), kTinyTokenizerJson).ok());
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ((*tokenizer)->vocab_size(), 4);
}

TEST(LoadTokenizerTest, CorruptModelAloneIsAnError) {
  const std::string dir = MakeTestDir("corrupt");
  ASSERT_TRUE(WriteStringToFile(JoinPath(dir, "tokenizer.model"), "\x0a\xff\xff\xff").ok());
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(dir);
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(tokenizer.status().message(), HasSubstr("tokenizer.model"));
}

TEST(LoadTokenizerTest, EmptyDirectoryIsNotFound) {
  const std::string dir = MakeTestDir("empty");
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(dir);
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(tokenizer.status().message(), HasSubstr(dir));
}

}  // namespace
}  // namespace semshare
