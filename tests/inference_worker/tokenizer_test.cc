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

// Counts the ids every Decode call is given.
class CountingTokenizer : public Tokenizer {
 public:
  explicit CountingTokenizer(const Tokenizer* inner) : inner_(inner) {}
  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const override {
    return inner_->Encode(text);
  }
  std::string Decode(absl::Span<const int32_t> ids) const override {
    decoded_ids += static_cast<int64_t>(ids.size());
    return inner_->Decode(ids);
  }
  int32_t vocab_size() const override { return inner_->vocab_size(); }
  int32_t bos_id() const override { return inner_->bos_id(); }
  int32_t eos_id() const override { return inner_->eos_id(); }
  mutable int64_t decoded_ids = 0;

 private:
  const Tokenizer* inner_;
};

constexpr char kReplacement[] = "\xEF\xBF\xBD";

TEST(IncrementalDetokenizerTest, PiecesSpellTheWholeDecodeAndHoldBackPartialCharacters) {
  const std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer(kAustenDir).value();
  // Accents, dashes, curly quotes and CJK: several are byte-fallback tokens, one byte each.
  for (const std::string text : {"The carriage stopped at the door of the house.",
                                 " Mr. Darcy said: \u201cIt is a caf\u00e9 \u2014 na\u00efve, "
                                 "isn\u2019t it?\u201d \u65e5\u672c",
                                 "  double  spaces\nand a new line"}) {
    const std::vector<int32_t> ids = tokenizer->Encode(text).value();
    IncrementalDetokenizer detokenizer(tokenizer.get());
    std::string streamed;
    bool held_back = false;
    for (int32_t id : ids) {
      const std::string piece = detokenizer.Next(id);
      held_back |= piece.empty();
      EXPECT_EQ(piece.find(kReplacement), std::string::npos) << "piece " << piece;
      streamed += piece;
    }
    const std::string whole = tokenizer->Decode(ids);
    EXPECT_EQ(streamed, whole.substr(0, streamed.size()));
    // Only characters still incomplete after the last token may be left over; none here.
    EXPECT_EQ(streamed, whole) << text;
    if (text.find('\xE6') != std::string::npos) {
      EXPECT_TRUE(held_back) << "multi-byte characters should have been held back";
    }
  }
}

TEST(IncrementalDetokenizerTest, DecodesAShortWindowPerToken) {
  const std::unique_ptr<Tokenizer> inner = LoadTokenizer(kAustenDir).value();
  const CountingTokenizer tokenizer(inner.get());
  std::string text;
  for (int i = 0; i < 40; ++i) text += "It is a truth universally acknowledged. ";
  const std::vector<int32_t> ids = tokenizer.Encode(text).value();
  ASSERT_GT(ids.size(), 300u);
  IncrementalDetokenizer detokenizer(&tokenizer);
  std::string streamed;
  for (int32_t id : ids) streamed += detokenizer.Next(id);
  EXPECT_EQ(streamed, inner->Decode(ids));
  // Two short windows a token (context and context + new), not the whole output each time
  // (which would be ids.size()^2 / 2 ids here).
  EXPECT_LE(tokenizer.decoded_ids, 8 * static_cast<int64_t>(ids.size()));
}

}  // namespace
}  // namespace semshare
