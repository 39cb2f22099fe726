#include "inference_worker/engine/bpe_tokenizer.h"

#include <random>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference_worker/engine/byte_level_pretokenizer.h"
#include "tests/common/corrupt_bytes.h"

namespace semshare {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kLlama3Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr char kQwen2Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

Json SplitStep(const char* regex) {
  Json step;
  step["type"] = "Split";
  step["pattern"]["Regex"] = regex;
  step["behavior"] = "Isolated";
  step["invert"] = false;
  return step;
}

Json ByteLevelStep(bool use_regex, bool add_prefix_space) {
  Json step;
  step["type"] = "ByteLevel";
  step["add_prefix_space"] = add_prefix_space;
  step["trim_offsets"] = true;
  step["use_regex"] = use_regex;
  return step;
}

// A Llama-3 shaped tokenizer.json: ids 0..255 are the byte alphabet (id == byte value), a
// few merges, two special tokens and one ordinary added token.
Json MakeTokenizerJson(const char* split_regex = kLlama3Regex) {
  Json doc;
  Json& model = doc["model"];
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = nullptr;
  model["byte_fallback"] = false;
  model["ignore_merges"] = false;
  Json& vocab = model["vocab"];
  const auto& alphabet = ByteLevelAlphabet();
  for (int b = 0; b < 256; ++b) vocab[alphabet[b]] = b;
  int next_id = 256;
  const auto add_merge = [&](const char* merge) {
    model["merges"].push_back(merge);
    std::string merged = merge;
    merged.erase(merged.find(' '), 1);
    vocab[merged] = next_id++;
  };
  add_merge("\xC4\xA0 t");    // 256 "Ġt"
  add_merge("h e");           // 257 "he"
  add_merge("\xC4\xA0t he");  // 258 "Ġthe"
  add_merge("l l");           // 259 "ll"
  add_merge("ll o");          // 260 "llo"
  add_merge("1 2");           // 261 "12"
  add_merge("12 3");          // 262 "123"
  add_merge("\xC4\xA0 w");    // 263 "Ġw"
  add_merge("o r");           // 264 "or"
  vocab["xyz"] = 270;         // Reachable only with ignore_merges.

  const auto add_token = [&doc](int id, const char* content, bool special) {
    Json token;
    token["id"] = id;
    token["content"] = content;
    token["single_word"] = false;
    token["lstrip"] = false;
    token["rstrip"] = false;
    token["normalized"] = !special;
    token["special"] = special;
    doc["added_tokens"].push_back(token);
  };
  add_token(300, "<|begin_of_text|>", true);
  add_token(301, "<|end_of_text|>", true);
  add_token(302, "<tool>", false);

  doc["normalizer"] = nullptr;
  doc["pre_tokenizer"]["type"] = "Sequence";
  doc["pre_tokenizer"]["pretokenizers"].push_back(SplitStep(split_regex));
  doc["pre_tokenizer"]["pretokenizers"].push_back(ByteLevelStep(false, false));
  doc["decoder"]["type"] = "ByteLevel";
  return doc;
}

std::unique_ptr<BpeTokenizer> Load(const Json& doc) {
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> tokenizer = BpeTokenizer::FromJson(doc.Dump());
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return tokenizer.ok() ? std::move(tokenizer).value() : nullptr;
}

std::vector<int32_t> Encode(const Tokenizer& tokenizer, absl::string_view text) {
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(text);
  EXPECT_TRUE(ids.ok()) << ids.status();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

TEST(BpeTokenizerTest, MergesByRank) {
  auto tokenizer = Load(MakeTokenizerJson());
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_THAT(Encode(*tokenizer, " the"), ElementsAre(258));
  EXPECT_THAT(Encode(*tokenizer, "the"), ElementsAre('t', 257));
  EXPECT_THAT(Encode(*tokenizer, "hello"), ElementsAre(257, 260));
  EXPECT_THAT(Encode(*tokenizer, "lll"), ElementsAre(259, 'l'));  // Leftmost pair first.
  EXPECT_THAT(Encode(*tokenizer, "hello world"), ElementsAre(257, 260, 263, 264, 'l', 'd'));
  EXPECT_THAT(Encode(*tokenizer, "xyz"), ElementsAre('x', 'y', 'z'));
  EXPECT_THAT(Encode(*tokenizer, ""), ElementsAre());
}

TEST(BpeTokenizerTest, NumbersFollowThePattern) {
  auto llama3 = Load(MakeTokenizerJson(kLlama3Regex));
  auto qwen2 = Load(MakeTokenizerJson(kQwen2Regex));
  ASSERT_NE(llama3, nullptr);
  ASSERT_NE(qwen2, nullptr);
  EXPECT_THAT(Encode(*llama3, "12345"), ElementsAre(262, '4', '5'));  // "123" "45"
  EXPECT_THAT(Encode(*qwen2, "12345"), ElementsAre('1', '2', '3', '4', '5'));
}

TEST(BpeTokenizerTest, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
  Json doc = MakeTokenizerJson();
  doc["model"]["ignore_merges"] = true;
  auto tokenizer = Load(doc);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_THAT(Encode(*tokenizer, "xyz"), ElementsAre(270));
  EXPECT_THAT(Encode(*tokenizer, "hello"), ElementsAre(257, 260));
}

TEST(BpeTokenizerTest, SpecialTokensAreMatchedLiterally) {
  auto tokenizer = Load(MakeTokenizerJson());
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->bos_id(), 300);
  EXPECT_EQ(tokenizer->eos_id(), 301);
  EXPECT_EQ(tokenizer->vocab_size(), 303);
  EXPECT_THAT(Encode(*tokenizer, "<|begin_of_text|>hello world<|end_of_text|>"),
              ElementsAre(300, 257, 260, 263, 264, 'l', 'd', 301));
  EXPECT_THAT(Encode(*tokenizer, "<tool> the<|begin_of_text"),
              ElementsAre(302, 258, '<', '|', 'b', 'e', 'g', 'i', 'n', '_', 'o', 'f', '_', 't', 'e',
                          'x', 't'));
  // Special tokens are skipped on decode, ordinary added tokens are not.
  EXPECT_EQ(tokenizer->Decode({300, 258, 302, 301}), " the<tool>");
}

TEST(BpeTokenizerTest, UnicodeRoundTrips) {
  auto tokenizer = Load(MakeTokenizerJson());
  ASSERT_NE(tokenizer, nullptr);
  for (const char* text :
       {"h\xC3\xA9llo w\xC3\xB6rld \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x99\x82\n\n  x",
        "It's 2024!\r\n\tTabs,   spaces", " \xE2\x80\x94 \xE2\x80\x9Cquoted\xE2\x80\x9D", "\n"}) {
    const std::vector<int32_t> ids = Encode(*tokenizer, text);
    EXPECT_EQ(tokenizer->Decode(ids), text);
  }
  // Bytes that are not UTF-8 come back as U+FFFD, one per maximal bad sequence.
  EXPECT_EQ(tokenizer->Decode({0xE6, 0x97, 'a', 0xFF}),
            "\xEF\xBF\xBD"
            "a\xEF\xBF\xBD");
  EXPECT_EQ(tokenizer->Decode({-1, 280, 100000}), "");  // Unknown ids decode to nothing.
}

TEST(BpeTokenizerTest, Gpt2StyleByteLevelPreTokenizer) {
  Json doc = MakeTokenizerJson();
  doc["pre_tokenizer"] = ByteLevelStep(/*use_regex=*/true, /*add_prefix_space=*/false);
  auto tokenizer = Load(doc);
  ASSERT_NE(tokenizer, nullptr);
  // "it" "'s" " " " the": a run of spaces leaves its last space to the next word.
  EXPECT_THAT(Encode(*tokenizer, "it's  the"), ElementsAre('i', 't', '\'', 's', ' ', 258));

  doc["pre_tokenizer"] = ByteLevelStep(/*use_regex=*/true, /*add_prefix_space=*/true);
  auto prefixed = Load(doc);
  ASSERT_NE(prefixed, nullptr);
  EXPECT_THAT(Encode(*prefixed, "the"), ElementsAre(258));
}

TEST(BpeTokenizerTest, QwenStyleNamesGiveEosOnly) {
  Json doc = MakeTokenizerJson(kQwen2Regex);
  doc["added_tokens"] = Json::MakeArray();
  Json token;
  token["id"] = 300;
  token["content"] = "<|endoftext|>";
  token["special"] = true;
  doc["added_tokens"].push_back(token);
  doc["normalizer"]["type"] = "NFC";
  auto tokenizer = Load(doc);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_EQ(tokenizer->bos_id(), -1);
  EXPECT_EQ(tokenizer->eos_id(), 300);
}

TEST(BpeTokenizerTest, MergesMayBeWrittenAsPairs) {
  Json doc = MakeTokenizerJson();
  Json pairs = Json::MakeArray();
  for (const Json& merge : doc["model"]["merges"].array_items()) {
    const std::string& text = merge.string_value();
    const size_t space = text.find(' ');
    pairs.push_back(Json(Json::Array{text.substr(0, space), text.substr(space + 1)}));
  }
  doc["model"]["merges"] = pairs;
  auto tokenizer = Load(doc);
  ASSERT_NE(tokenizer, nullptr);
  EXPECT_THAT(Encode(*tokenizer, " the hello"), ElementsAre(258, ' ', 257, 260));
}

void ExpectLoadError(const std::string& json_text, const std::string& expected_substring) {
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> tokenizer = BpeTokenizer::FromJson(json_text);
  ASSERT_FALSE(tokenizer.ok()) << json_text.substr(0, 100);
  EXPECT_EQ(tokenizer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tokenizer.status().message(), HasSubstr(expected_substring));
}

TEST(BpeTokenizerTest, MalformedOrUnsupportedDocumentsNameTheProblem) {
  ExpectLoadError("{\"model\": {", "not valid JSON");
  ExpectLoadError("[]", "JSON object");
  ExpectLoadError("{}", "model");

  Json doc = MakeTokenizerJson();
  doc["model"]["type"] = "WordPiece";
  ExpectLoadError(doc.Dump(), "model.type");

  doc = MakeTokenizerJson();
  doc["model"]["byte_fallback"] = true;
  ExpectLoadError(doc.Dump(), "model.byte_fallback");

  doc = MakeTokenizerJson();
  doc["model"]["merges"].push_back("x q");  // "xq" is not in the vocabulary.
  ExpectLoadError(doc.Dump(), "model.merges[9]");

  doc = MakeTokenizerJson();
  doc["model"]["vocab"]["bad"] = "seven";
  ExpectLoadError(doc.Dump(), "model.vocab[\"bad\"]");

  doc = MakeTokenizerJson();
  doc["added_tokens"].array_items()[0]["id"] = 2000000000;  // Would need a 2G-entry table.
  ExpectLoadError(doc.Dump(), "added_tokens[0].id");

  doc = MakeTokenizerJson();
  doc["pre_tokenizer"]["pretokenizers"].array_items()[0]["type"] = "Whitespace";
  ExpectLoadError(doc.Dump(), "pre_tokenizer.pretokenizers[0].type");

  doc = MakeTokenizerJson();
  doc["pre_tokenizer"]["pretokenizers"].array_items()[0]["pattern"]["Regex"] = "\\s+";
  ExpectLoadError(doc.Dump(), "pre_tokenizer.pretokenizers[0].pattern");

  doc = MakeTokenizerJson();
  doc["pre_tokenizer"] = SplitStep(kLlama3Regex);
  ExpectLoadError(doc.Dump(), "ByteLevel");

  doc = MakeTokenizerJson();
  doc["normalizer"]["type"] = "Lowercase";
  ExpectLoadError(doc.Dump(), "normalizer.type");

  doc = MakeTokenizerJson();
  doc["added_tokens"].array_items()[0]["content"] = "";
  ExpectLoadError(doc.Dump(), "added_tokens[0].content");
}

// Random bytes overwritten anywhere in a tokenizer.json: loading either fails with a message
// or gives a tokenizer that encodes and decodes text, never a crash.
TEST(BpeTokenizerTest, CorruptedDocumentsNeverCrash) {
  const std::string text = MakeTokenizerJson().Dump();
  std::mt19937 rng(11);
  int refused = 0;
  for (int trial = 0; trial < 400; ++trial) {
    std::string corrupted = text;
    CorruptBytes(trial, corrupted.size(), &rng, &corrupted);
    absl::StatusOr<std::unique_ptr<BpeTokenizer>> tokenizer = BpeTokenizer::FromJson(corrupted);
    if (!tokenizer.ok()) {
      ++refused;
      EXPECT_FALSE(tokenizer.status().message().empty()) << "trial " << trial;
      continue;
    }
    absl::StatusOr<std::vector<int32_t>> ids =
        (*tokenizer)->Encode("the 123 hello <|end_of_text|> caf\xC3\xA9 \xF0\x9F\x99\x82\n");
    ASSERT_TRUE(ids.ok()) << "trial " << trial << ": " << ids.status();
    (*tokenizer)->Decode(*ids);
  }
  EXPECT_GT(refused, 100);
}

std::vector<std::string> Split(absl::string_view text, PreTokenizerPattern pattern) {
  std::vector<absl::string_view> pieces;
  SplitPreTokens(text, pattern, &pieces);
  return std::vector<std::string>(pieces.begin(), pieces.end());
}

// Expected pieces come from the real regexes (Python's `regex` module).
TEST(ByteLevelPreTokenizerTest, SplitsLikeTheRegexes) {
  const char* text = "Hello world's 12345  \n\n test!!\n";
  EXPECT_THAT(Split(text, PreTokenizerPattern::kLlama3),
              ElementsAre("Hello", " world", "'s", " ", "123", "45", "  \n\n", " test", "!!\n"));
  EXPECT_THAT(Split(text, PreTokenizerPattern::kQwen2),
              ElementsAre("Hello", " world", "'s", " ", "1", "2", "3", "4", "5", "  \n\n", " test",
                          "!!\n"));
  EXPECT_THAT(Split(text, PreTokenizerPattern::kGpt2),
              ElementsAre("Hello", " world", "'s", " 12345", "  \n\n", " test", "!!", "\n"));

  const char* mixed = "I'M (fine)...\tok  \r\n  x";
  EXPECT_THAT(Split(mixed, PreTokenizerPattern::kLlama3),
              ElementsAre("I", "'M", " (", "fine", ")...", "\tok", "  \r\n", " ", " x"));
  EXPECT_THAT(Split(mixed, PreTokenizerPattern::kGpt2),
              ElementsAre("I", "'", "M", " (", "fine", ")...", "\t", "ok", "  \r\n ", " x"));

  EXPECT_THAT(
      Split("caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x99\x82!", PreTokenizerPattern::kLlama3),
      ElementsAre("caf\xC3\xA9", " \xE6\x97\xA5\xE6\x9C\xAC", " \xF0\x9F\x99\x82!"));
  EXPECT_TRUE(Split("", PreTokenizerPattern::kLlama3).empty());
}

TEST(ByteLevelPreTokenizerTest, RecognizesOnlyKnownPatterns) {
  EXPECT_EQ(RecognizePreTokenizerPattern(kLlama3Regex).value(), PreTokenizerPattern::kLlama3);
  EXPECT_EQ(RecognizePreTokenizerPattern(kQwen2Regex).value(), PreTokenizerPattern::kQwen2);
  EXPECT_FALSE(RecognizePreTokenizerPattern("\\w+").ok());
}

TEST(ByteLevelPreTokenizerTest, AlphabetIsGpt2s) {
  const auto& alphabet = ByteLevelAlphabet();
  EXPECT_EQ(alphabet[' '], "\xC4\xA0");   // "Ġ"
  EXPECT_EQ(alphabet['\n'], "\xC4\x8A");  // "Ċ"
  EXPECT_EQ(alphabet['a'], "a");
  for (int b = 0; b < 256; ++b) {
    char32_t code_point;
    int length;
    ASSERT_TRUE(DecodeUtf8Char(alphabet[b], &code_point, &length));
    EXPECT_EQ(static_cast<size_t>(length), alphabet[b].size());
    EXPECT_EQ(ByteLevelCharToByte(code_point), b);
  }
  EXPECT_EQ(ByteLevelCharToByte(0x120), ' ');
  EXPECT_EQ(ByteLevelCharToByte('a'), 'a');
  EXPECT_EQ(ByteLevelCharToByte(0x4E00), -1);
}

}  // namespace
}  // namespace semshare
