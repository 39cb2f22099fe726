#include "inference_worker/engine/model.h"

#include <ATen/ATen.h>

#include <cmath>

#include "common/file_util.h"
#include "common/json.h"
#include "gtest/gtest.h"
#include "inference_worker/engine/checkpoint.h"
#include "inference_worker/engine/retention.h"
#include "tests/inference_worker/test_model_util.h"

namespace semshare {
namespace {

// Full prefill and greedy decode must reproduce an independent fp32 implementation's output.
TEST(ModelTest, ReproducesIndependentReferenceOutputs) {
  ExpectReproducesReferenceOutputs(AustenModel(), 2e-3);
}

TEST(ModelTest, TokenizerMatchesReferencePromptIds) {
  const Model& model = AustenModel();
  ASSERT_NE(model.tokenizer(), nullptr);
  const Json cases = ReferenceCases();
  for (const Json& c : cases.array_items()) {
    std::vector<int32_t> ids = model.tokenizer()->Encode(c["prompt"].string_value()).value();
    ids.insert(ids.begin(), model.tokenizer()->bos_id());
    EXPECT_EQ(ids, Ints(c["prompt_ids"]));
  }
}

// Prefill in one pass and token by token must agree: the same attention by positions.
TEST(ModelTest, IncrementalDecodeMatchesPrefill) {
  const Model& model = AustenModel();
  const std::vector<int32_t> ids = {1, 671, 346, 261, 1505, 516, 4024, 1095, 664};
  KVCache full = model.NewCache(16);
  const at::Tensor expected = model.Prefill(ids, &full);
  KVCache stepwise = model.NewCache(16);
  at::Tensor logits;
  for (size_t i = 0; i < ids.size(); ++i)
    logits = model.DecodeStep(ids[i], static_cast<int64_t>(i), &stepwise);
  EXPECT_TRUE(at::allclose(logits, expected, 1e-4, 1e-4));
  for (size_t l = 0; l < full.layers.size(); ++l) {
    EXPECT_TRUE(at::allclose(full.layers[l].k(), stepwise.layers[l].k(), 1e-4, 1e-5));
  }
}

// A merged token stands for the tokens folded into it (KeepMerging, LayerKV::bias): a cache in
// which some tokens appear twice attends exactly as that cache with each duplicate merged into
// its original, and not as the cache with the duplicates dropped.
TEST(ModelTest, MergedDuplicatesAttendAsTheTokensTheyStandFor) {
  const Model& model = AustenModel();
  const std::vector<int32_t> ids = {1, 671, 346, 261, 1505, 516, 4024, 1095, 664};
  const int64_t n = static_cast<int64_t>(ids.size());
  KVCache prefilled = model.NewCache(n);
  model.Prefill(ids, &prefilled);
  // Every third token appears twice, its copy right after it; slots take positions 0, 1, ...
  std::vector<int64_t> source;
  std::vector<int64_t> originals;
  for (int64_t i = 0; i < n; ++i) {
    originals.push_back(static_cast<int64_t>(source.size()));
    source.push_back(i);
    if (i % 3 == 1) source.push_back(i);
  }
  const at::Tensor slots = at::tensor(source, at::kLong);
  const int64_t total = static_cast<int64_t>(source.size());
  RetentionOptions options;
  options.merge_evicted = true;
  options.merge_min_similarity = 0.999;
  options.merge_window = 2;
  KVCache duplicated;
  KVCache merged;
  KVCache dropped;
  for (const LayerKV& layer : prefilled.layers) {
    const at::Tensor k = layer.k().index_select(1, slots);
    const at::Tensor v = layer.v().index_select(1, slots);
    duplicated.layers.emplace_back(k, v, at::arange(total, at::kLong));
    merged.layers.emplace_back(k.clone(), v.clone(), at::arange(total, at::kLong));
    KeepMerging(options, at::tensor(originals, at::kLong), at::Tensor(), &merged.layers.back());
    dropped.layers.emplace_back(k.clone(), v.clone(), at::arange(total, at::kLong));
    dropped.layers.back().Keep(at::tensor(originals, at::kLong));
  }
  ASSERT_EQ(merged.layers[1].size(), n);
  const at::Tensor want = model.DecodeStep(42, total, &duplicated);
  const at::Tensor got = model.DecodeStep(42, total, &merged);
  const at::Tensor without = model.DecodeStep(42, total, &dropped);
  EXPECT_TRUE(at::allclose(got, want, 1e-4, 1e-4)) << (got - want).abs().max().item<float>();
  EXPECT_GT((without - want).abs().max().item<float>(), 1e-2);
  // The decoded token was appended with no bias; the merged ones keep theirs.
  EXPECT_EQ(merged.layers[1].bias().size(1), n + 1);
  EXPECT_EQ(merged.layers[1].bias()[0][n].item<float>(), 0.0f);
  EXPECT_NEAR(merged.layers[1].bias()[0][1].item<float>(), std::log(2.0f), 1e-5);
}

// The fixture model with a sliding window on layers >= first_layer (Mistral: 0; Qwen2: its
// max_window_layers).
std::unique_ptr<Model> AustenWithWindow(int64_t window, int64_t first_layer = 0) {
  Checkpoint checkpoint = LoadCheckpoint(AustenDir()).value();
  checkpoint.config.sliding_window = window;
  checkpoint.config.sliding_window_first_layer = first_layer;
  return Model::FromCheckpoint(std::move(checkpoint), ModelOptions{}).value();
}

std::vector<int32_t> LongPrompt() {
  std::vector<int32_t> ids =
      AustenModel()
          .tokenizer()
          ->Encode(
              "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy "
              "disposition, seemed to unite some of the best blessings of existence; and had "
              "lived nearly twenty-one years in the world with very little to distress or vex "
              "her. She was the youngest of the two daughters of a most affectionate, "
              "indulgent father; and had, in consequence of her sister's marriage, been "
              "mistress of his house from a very early period.")
          .value();
  ids.insert(ids.begin(), 1);
  return ids;
}

at::Tensor LastLogits(const Model& model, const std::vector<int32_t>& ids) {
  KVCache cache = model.NewCache(static_cast<int64_t>(ids.size()));
  return model.Prefill(ids, &cache);
}

// Six layers with a window of 8: the last token reads at most the last 6 * 7 + 1 positions,
// so a token further back changes nothing; without the window it changes the logits.
TEST(ModelTest, SlidingWindowHidesTokensBeyondItsReach) {
  const std::vector<int32_t> a = LongPrompt();
  ASSERT_GT(a.size(), 60u);
  std::vector<int32_t> b = a;
  b[3] = a[3] == 100 ? 101 : 100;
  const std::unique_ptr<Model> windowed = AustenWithWindow(8);
  EXPECT_TRUE(at::equal(LastLogits(*windowed, a), LastLogits(*windowed, b)));
  const at::Tensor full_a = LastLogits(AustenModel(), a);
  EXPECT_GT((full_a - LastLogits(AustenModel(), b)).abs().max().item<float>(), 1e-4);
  // Windowed attention really differs from full attention on this prompt.
  EXPECT_GT((full_a - LastLogits(*windowed, a)).abs().max().item<float>(), 1e-4);
}

TEST(ModelTest, SlidingWindowAsLongAsThePromptChangesNothing) {
  const std::vector<int32_t> ids = LongPrompt();
  const std::unique_ptr<Model> windowed = AustenWithWindow(static_cast<int64_t>(ids.size()));
  EXPECT_TRUE(at::equal(LastLogits(*windowed, ids), LastLogits(AustenModel(), ids)));
}

TEST(ModelTest, SlidingWindowDecodeMatchesPrefill) {
  const std::unique_ptr<Model> windowed = AustenWithWindow(4);
  const std::vector<int32_t> ids = {1, 671, 346, 261, 1505, 516, 4024, 1095, 664, 346, 261, 1505};
  const at::Tensor expected = LastLogits(*windowed, ids);
  KVCache stepwise = windowed->NewCache(16);
  at::Tensor logits;
  for (size_t i = 0; i < ids.size(); ++i) {
    logits = windowed->DecodeStep(ids[i], static_cast<int64_t>(i), &stepwise);
  }
  EXPECT_TRUE(at::allclose(logits, expected, 1e-4, 1e-4));
  EXPECT_GT((expected - LastLogits(AustenModel(), ids)).abs().max().item<float>(), 1e-4);
}

// Qwen2 windows only the layers from max_window_layers on.
TEST(ModelTest, SlidingWindowStartsAtItsFirstLayer) {
  const std::vector<int32_t> ids = LongPrompt();
  const at::Tensor full = LastLogits(AustenModel(), ids);
  const std::unique_ptr<Model> none = AustenWithWindow(8, /*first_layer=*/6);
  EXPECT_TRUE(at::equal(LastLogits(*none, ids), full));
  const std::unique_ptr<Model> upper = AustenWithWindow(8, /*first_layer=*/3);
  const at::Tensor upper_logits = LastLogits(*upper, ids);
  EXPECT_GT((upper_logits - full).abs().max().item<float>(), 1e-4);
  EXPECT_GT((upper_logits - LastLogits(*AustenWithWindow(8), ids)).abs().max().item<float>(), 1e-4);
}

TEST(ModelTest, RefusesUnknownDeviceAndDtype) {
  ModelOptions options;
  options.dtype = "int8";
  EXPECT_FALSE(Model::Load(AustenDir(), options).ok());
  options.dtype = "auto";
  options.device = "tpu";
  EXPECT_FALSE(Model::Load(AustenDir(), options).ok());
}

// A random-weight checkpoint of `vocab_size` tokens with the unigram tokenizer.model of the
// SentencePiece fixture (800 pieces) beside it.
std::string CheckpointWithUnigramTokenizer(const std::string& name, int64_t vocab_size) {
  const std::string dir = FreshTestDir("model_" + name);
  ModelConfig config = *PresetConfig("tiny");
  config.vocab_size = vocab_size;
  EXPECT_TRUE(WriteRandomCheckpoint(config, 3, "float32", dir).ok());
  const absl::StatusOr<std::string> tokenizer =
      ReadFileToString(JoinPath(SEMSHARE_TEST_DATA_DIR, "sentencepiece-unigram/trained.model"));
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_TRUE(WriteStringToFile(JoinPath(dir, "tokenizer.model"), tokenizer.value_or("")).ok());
  return dir;
}

TEST(ModelTest, LoadsACheckpointWithAUnigramTokenizer) {
  const std::string dir = CheckpointWithUnigramTokenizer("unigram", 4096);
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(dir, ModelOptions{});
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_NE((*model)->tokenizer(), nullptr);
  EXPECT_EQ((*model)->tokenizer()->vocab_size(), 800);
  const std::string text = "The carriage stopped at the door of Mansfield Park.";
  absl::StatusOr<std::vector<int32_t>> ids = (*model)->Tokenize(text, /*add_bos=*/true);
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_GT(ids->size(), 2u);
  EXPECT_EQ(ids->front(), (*model)->tokenizer()->bos_id());
  EXPECT_EQ((*model)->tokenizer()->Decode(*ids), text);
  const at::Tensor logits = LastLogits(**model, *ids);
  EXPECT_EQ(logits.size(0), 4096);
  EXPECT_TRUE(logits.isfinite().all().item<bool>());
}

// Token ids past the embedding matrix would fail deep inside a forward pass; the load refuses
// them with the two sizes.
TEST(ModelTest, RefusesATokenizerLargerThanTheVocabulary) {
  const std::string dir = CheckpointWithUnigramTokenizer("small_vocab", 512);
  const absl::Status status = Model::Load(dir, ModelOptions{}).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_NE(status.message().find("800 tokens, more than config.json's vocab_size 512"),
            absl::string_view::npos)
      << status;
}

}  // namespace
}  // namespace semshare
