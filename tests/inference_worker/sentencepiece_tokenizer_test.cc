#include "inference_worker/engine/sentencepiece_tokenizer.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace semshare {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const std::string kAustenModel = JoinPath(SEMSHARE_TEST_DATA_DIR, "austen-5m/tokenizer.model");

// Serializes just enough of sentencepiece's ModelProto to build test models by hand.
class ModelProtoBuilder {
 public:
  ModelProtoBuilder& AddPiece(const std::string& piece, float score, int type) {
    std::string message;
    AppendBytes(1, piece, &message);
    AppendTag(2, 5, &message);
    uint32_t bits;
    std::memcpy(&bits, &score, sizeof(bits));
    for (int i = 0; i < 4; ++i) message.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
    AppendVarintField(3, static_cast<uint64_t>(type), &message);
    AppendBytes(1, message, &pieces_);
    return *this;
  }

  std::string Build(int model_type, bool byte_fallback, bool add_dummy_prefix,
                    bool remove_extra_whitespaces) const {
    std::string trainer;
    AppendVarintField(3, static_cast<uint64_t>(model_type), &trainer);
    AppendVarintField(35, byte_fallback ? 1 : 0, &trainer);
    AppendVarintField(43, static_cast<uint64_t>(int64_t{-1}), &trainer);  // pad_id -1.
    std::string normalizer;
    AppendBytes(1, "identity", &normalizer);
    AppendVarintField(3, add_dummy_prefix ? 1 : 0, &normalizer);
    AppendVarintField(4, remove_extra_whitespaces ? 1 : 0, &normalizer);
    std::string model = pieces_;
    AppendBytes(2, trainer, &model);
    AppendBytes(3, normalizer, &model);
    AppendVarintField(999, 7, &model);  // An unknown field, which readers must skip.
    return model;
  }

 private:
  static void AppendVarint(uint64_t value, std::string* out) {
    while (value >= 0x80) {
      out->push_back(static_cast<char>((value & 0x7F) | 0x80));
      value >>= 7;
    }
    out->push_back(static_cast<char>(value));
  }
  static void AppendTag(int field, int wire_type, std::string* out) {
    AppendVarint((static_cast<uint64_t>(field) << 3) | wire_type, out);
  }
  static void AppendVarintField(int field, uint64_t value, std::string* out) {
    AppendTag(field, 0, out);
    AppendVarint(value, out);
  }
  static void AppendBytes(int field, const std::string& bytes, std::string* out) {
    AppendTag(field, 2, out);
    AppendVarint(bytes.size(), out);
    out->append(bytes);
  }

  std::string pieces_;
};

constexpr int kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5;
constexpr int kUnigram = 1, kBpe = 2;

// A 13-piece model whose expected encodings were computed with libsentencepiece.
ModelProtoBuilder TinyModel() {
  ModelProtoBuilder builder;
  builder.AddPiece("<unk>", 0, kUnknown)
      .AddPiece("<s>", 0, kControl)
      .AddPiece("</s>", 0, kControl)
      .AddPiece("\xE2\x96\x81", -1, kNormal)  // "▁"
      .AddPiece("a", -2, kNormal)
      .AddPiece("b", -3, kNormal)
      .AddPiece("c", -4, kNormal)
      .AddPiece("ab", -5, kNormal)
      .AddPiece("bc", -5, kNormal)
      .AddPiece(
          "\xE2\x96\x81"
          "a",
          -6, kNormal)
      .AddPiece("abc", -7, kNormal)
      .AddPiece("<sep>", 0, kUserDefined)
      .AddPiece("ca", -1, kUnused);
  return builder;
}

// TinyModel() read as `model_type`: no byte fallback, a dummy prefix, extra whitespace kept.
std::unique_ptr<SentencePieceTokenizer> TinyTokenizer(int model_type) {
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
      SentencePieceTokenizer::FromSerializedProto(
          TinyModel().Build(model_type, /*byte_fallback=*/false, /*add_dummy_prefix=*/true,
                            /*remove_extra_whitespaces=*/false));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

std::unique_ptr<SentencePieceTokenizer> LoadAusten() {
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
      SentencePieceTokenizer::Open(kAustenModel);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

TEST(SentencePieceTokenizerTest, AustenModelMetadata) {
  auto tokenizer = LoadAusten();
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->vocab_size(), 4096);
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  EXPECT_EQ(tokenizer->IdToPiece(0), "<unk>");
  EXPECT_EQ(tokenizer->IdToPiece(3 + 0x41), "<0x41>");
}

TEST(SentencePieceTokenizerTest, ReproducesReferencePromptIds) {
  auto tokenizer = LoadAusten();
  ASSERT_NE(tokenizer, nullptr);
  absl::StatusOr<std::string> text =
      ReadFileToString(JoinPath(SEMSHARE_TEST_DATA_DIR, "austen-5m-reference.json"));
  ASSERT_TRUE(text.ok()) << text.status();
  absl::StatusOr<Json> reference = ParseJson(*text);
  ASSERT_TRUE(reference.ok()) << reference.status();
  const Json::Array& cases = (*reference)["cases"].array_items();
  ASSERT_FALSE(cases.empty());
  for (const Json& test_case : cases) {
    const std::string& prompt = test_case["prompt"].string_value();
    std::vector<int32_t> expected;
    for (const Json& id : test_case["prompt_ids"].array_items()) {
      expected.push_back(static_cast<int32_t>(id.number_value()));
    }
    ASSERT_FALSE(expected.empty());
    ASSERT_EQ(expected.front(), tokenizer->bos_id());  // The reference prepends BOS.
    expected.erase(expected.begin());

    absl::StatusOr<std::vector<int32_t>> ids = tokenizer->Encode(prompt);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, expected) << prompt;
    EXPECT_EQ(tokenizer->Decode(*ids), prompt);

    std::vector<int32_t> greedy;
    for (const Json& id : test_case["greedy_ids"].array_items()) {
      greedy.push_back(static_cast<int32_t>(id.number_value()));
    }
    EXPECT_EQ(tokenizer->Decode(greedy), test_case["greedy_text"].string_value());
  }
}

TEST(SentencePieceTokenizerTest, ByteFallbackRoundTripsUnicode) {
  auto tokenizer = LoadAusten();
  ASSERT_NE(tokenizer, nullptr);
  const std::string text =
      "Caf\xC3\xA9 \xE2\x80\x94 na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x99\x82";
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer->Encode(text);
  ASSERT_TRUE(ids.ok());
  // From libsentencepiece: "é" is <0xC3><0xA9>, and so on.
  EXPECT_EQ(*ids, (std::vector<int32_t>{410,  3881, 198,  172, 4017, 229, 131, 151, 289,
                                        4020, 198,  178,  310, 4017, 233, 154, 168, 233,
                                        159,  175,  4017, 243, 162,  156, 133}));
  EXPECT_EQ(tokenizer->Decode(*ids), text);
}

TEST(SentencePieceTokenizerTest, NormalizesWhitespaceAndCompatibilityCharacters) {
  auto tokenizer = LoadAusten();
  ASSERT_NE(tokenizer, nullptr);
  // nmt_nfkc: tabs become spaces, extra spaces go; "ﬁ" becomes "fi" and "①" becomes "1".
  EXPECT_THAT(tokenizer->Encode("  It   is\ta truth  ").value(), ElementsAre(671, 346, 261, 1505));
  EXPECT_THAT(tokenizer->Encode("\xEF\xAC\x81ne \xE2\x91\xA0").value(), ElementsAre(1676, 3583));
  EXPECT_THAT(tokenizer->Encode("").value(), IsEmpty());
  EXPECT_THAT(tokenizer->Encode(" \n  ").value(), IsEmpty());
}

TEST(SentencePieceTokenizerTest, DecodeSkipsControlAndOutOfRangeIds) {
  auto tokenizer = LoadAusten();
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->Decode({1, 671, 346, -7, 99999, 2}), "It is");
  EXPECT_EQ(tokenizer->Decode({0}), " \xE2\x81\x87 ");  // <unk> decodes to " ⁇ ".
  EXPECT_EQ(tokenizer->Decode({}), "");
  // A lone continuation byte is not UTF-8: one U+FFFD per bad byte.
  EXPECT_EQ(tokenizer->Decode({3 + 0x80, 3 + 0x41}),
            "\xEF\xBF\xBD"
            "A");
}

TEST(SentencePieceTokenizerTest, LongTextEncodesAndRoundTrips) {
  auto tokenizer = LoadAusten();
  ASSERT_NE(tokenizer, nullptr);
  std::string text;
  while (text.size() < 30000) {
    text +=
        "It is a truth universally acknowledged, that a single man in possession of a good "
        "fortune, must be in want of a wife. ";
  }
  text.pop_back();
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer->Encode(text);
  ASSERT_TRUE(ids.ok());
  EXPECT_GT(ids->size(), 5000u);
  EXPECT_EQ(tokenizer->Decode(*ids), text);
}

TEST(SentencePieceTokenizerTest, HandBuiltModelMatchesLibsentencepiece) {
  const std::unique_ptr<SentencePieceTokenizer> tokenizer = TinyTokenizer(kBpe);
  ASSERT_NE(tokenizer, nullptr);
  const auto encode = [&](absl::string_view text) { return tokenizer->Encode(text).value(); };
  // "ab" and "bc" tie on score: the leftmost pair merges first, then "abc".
  EXPECT_THAT(encode("abc"), ElementsAre(3, 10));
  // User-defined symbols stay whole and never merge with neighbours.
  EXPECT_THAT(encode("a<sep>b"), ElementsAre(9, 11, 5));
  // Without byte fallback a run of unknown characters is a single <unk>.
  EXPECT_THAT(encode("xy"), ElementsAre(3, 0));
  // "ca" is UNUSED: it wins the merge but is split back into "c" "a".
  EXPECT_THAT(encode("ca"), ElementsAre(3, 6, 4));
  EXPECT_THAT(encode("bcab"), ElementsAre(3, 5, 6, 4, 5));
  // remove_extra_whitespaces is off: every space is kept.
  EXPECT_THAT(encode(" a"), ElementsAre(3, 9));
  EXPECT_THAT(encode("a b  c"), ElementsAre(9, 3, 5, 3, 3, 6));
  EXPECT_EQ(tokenizer->Decode({3, 9}), " a");
  EXPECT_EQ(tokenizer->Decode({9, 3, 5, 3, 3, 6}), "a b  c");
  EXPECT_EQ(tokenizer->Decode({3, 9, 1, 0, 2}), " a \xE2\x81\x87 ");
  EXPECT_EQ(tokenizer->bos_id(), 1);
  EXPECT_EQ(tokenizer->eos_id(), 2);
}

// What libsentencepiece 0.1.97 encodes and decodes (scripts/make_unigram_fixture.py): two
// hand-built UNIGRAM models on 139 strings each (ties between a piece and its parts, an UNUSED
// piece that would win, a user-defined piece inside a better NORMAL piece, multi-byte
// characters, unknown runs, byte fallback), and an 800-piece model trained by spm_train on
// Austen (nmt_nfkc normalization, byte fallback, a user-defined symbol) on 27 paragraphs.
TEST(SentencePieceTokenizerTest, UnigramMatchesLibsentencepiece) {
  const std::string dir = JoinPath(SEMSHARE_TEST_DATA_DIR, "sentencepiece-unigram");
  absl::StatusOr<std::string> text = ReadFileToString(JoinPath(dir, "expected.json"));
  ASSERT_TRUE(text.ok()) << text.status();
  absl::StatusOr<Json> expected = ParseJson(*text);
  ASSERT_TRUE(expected.ok()) << expected.status();
  for (const char* name : {"plain", "byte_fallback", "trained"}) {
    absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
        SentencePieceTokenizer::Open(JoinPath(dir, absl::StrCat(name, ".model")));
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    const Json::Array& cases = (*expected)["models"][name].array_items();
    ASSERT_GT(cases.size(), 20u) << name;
    for (const Json& test_case : cases) {
      const std::string& input = test_case["text"].string_value();
      std::vector<int32_t> ids;
      for (const Json& id : test_case["ids"].array_items()) {
        ids.push_back(static_cast<int32_t>(id.number_value()));
      }
      absl::StatusOr<std::vector<int32_t>> encoded = (*tokenizer)->Encode(input);
      ASSERT_TRUE(encoded.ok()) << encoded.status();
      EXPECT_EQ(*encoded, ids) << name << ": '" << input << "'";
      EXPECT_EQ((*tokenizer)->Decode(ids), test_case["decoded"].string_value())
          << name << ": '" << input << "'";
    }
  }
}

// The 13-piece model read as UNIGRAM; expected ids from libsentencepiece 0.1.97.
TEST(SentencePieceTokenizerTest, UnigramPicksTheBestScoringSegmentation) {
  const std::unique_ptr<SentencePieceTokenizer> tokenizer = TinyTokenizer(kUnigram);
  ASSERT_NE(tokenizer, nullptr);
  const auto encode = [&](absl::string_view text) { return tokenizer->Encode(text).value(); };
  // "▁" "abc" (-1 - 7 = -8) beats "▁" "ab" "c" (-10) and "▁a" "bc" (-11).
  EXPECT_THAT(encode("abc"), ElementsAre(3, 10));
  // A tie: "▁" "bc" "ab" and "▁" "bc" "a" "b" both score -11; the longer last piece stays.
  EXPECT_THAT(encode("bcab"), ElementsAre(3, 8, 7));
  // "ca" would score best but is UNUSED: "c" "a".
  EXPECT_THAT(encode("ca"), ElementsAre(3, 6, 4));
  // A run of unknown characters is one <unk>.
  EXPECT_THAT(encode("xy"), ElementsAre(3, 0));
  // "▁a" (-6) loses to "▁" "a" (-3); the user-defined piece stays whole.
  EXPECT_THAT(encode("a<sep>b"), ElementsAre(3, 4, 11, 5));
}

TEST(SentencePieceTokenizerTest, RefusesWordAndCharModels) {
  constexpr int kWord = 3, kChar = 4;
  for (const auto& [type, name] : {std::pair<int, const char*>{kWord, "WORD"}, {kChar, "CHAR"}}) {
    absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
        SentencePieceTokenizer::FromSerializedProto(TinyModel().Build(type, false, true, true));
    ASSERT_FALSE(tokenizer.ok()) << name;
    EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(tokenizer.status().message(), HasSubstr(name));
  }
}

TEST(SentencePieceTokenizerTest, RefusesModelsWithoutUnknownPiece) {
  ModelProtoBuilder builder;
  builder.AddPiece("a", 0, kNormal);
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
      SentencePieceTokenizer::FromSerializedProto(builder.Build(kBpe, false, true, true));
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_THAT(tokenizer.status().message(), HasSubstr("UNKNOWN"));
}

TEST(SentencePieceTokenizerTest, TruncatedModelIsAnErrorNotACrash) {
  absl::StatusOr<std::string> bytes = ReadFileToString(kAustenModel);
  ASSERT_TRUE(bytes.ok());
  std::vector<size_t> lengths = {0,
                                 1,
                                 2,
                                 5,
                                 17,
                                 100,
                                 1000,
                                 bytes->size() / 3,
                                 bytes->size() / 2,
                                 bytes->size() - 100,
                                 bytes->size() - 1};
  for (size_t length = 3; length < bytes->size(); length += 4099) lengths.push_back(length);
  for (const size_t length : lengths) {
    absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
        SentencePieceTokenizer::FromSerializedProto(absl::string_view(*bytes).substr(0, length));
    ASSERT_FALSE(tokenizer.ok()) << "truncated to " << length;
    EXPECT_TRUE(tokenizer.status().code() == absl::StatusCode::kDataLoss ||
                tokenizer.status().code() == absl::StatusCode::kInvalidArgument)
        << tokenizer.status();
  }

  const std::string dir = JoinPath(::testing::TempDir(), "semshare_truncated_sp_model");
  ASSERT_TRUE(MakeDirectories(dir).ok());
  const std::string path = JoinPath(dir, "tokenizer.model");
  ASSERT_TRUE(WriteStringToFile(path, bytes->substr(0, bytes->size() / 2)).ok());
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> from_file =
      SentencePieceTokenizer::Open(path);
  ASSERT_FALSE(from_file.ok());
  EXPECT_EQ(from_file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(from_file.status().message(), HasSubstr(path));
}

TEST(SentencePieceTokenizerTest, CorruptedModelNeverCrashes) {
  absl::StatusOr<std::string> bytes = ReadFileToString(kAustenModel);
  ASSERT_TRUE(bytes.ok());
  std::mt19937 rng(42);
  for (int trial = 0; trial < 200; ++trial) {
    std::string corrupted = *bytes;
    for (int flips = 0; flips < 1 + trial % 8; ++flips) {
      // Bias towards the pieces and specs at the front and the charsmap trie at the back.
      const size_t pos = trial % 2 == 0 ? rng() % 60000 : corrupted.size() - 1 - rng() % 250000;
      corrupted[pos] = static_cast<char>(rng());
    }
    absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
        SentencePieceTokenizer::FromSerializedProto(corrupted);
    if (!tokenizer.ok()) continue;
    absl::StatusOr<std::vector<int32_t>> ids =
        (*tokenizer)
            ->Encode("It is a truth universally acknowledged, caf\xC3\xA9 \xF0\x9F\x99\x82");
    ASSERT_TRUE(ids.ok());
    (*tokenizer)->Decode(*ids);
  }
}

TEST(SentencePieceTokenizerTest, MissingFileIsNotFound) {
  EXPECT_EQ(SentencePieceTokenizer::Open("/nonexistent/tokenizer.model").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace semshare
