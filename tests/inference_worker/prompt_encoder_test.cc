#include "inference_worker/engine/prompt_encoder.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference_worker/engine/checkpoint.h"
#include "inference_worker/engine/engine.h"
#include "tests/inference_worker/test_model_util.h"

namespace semshare {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const char* const kPrompts[] = {
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife.",
    "Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy "
    "disposition, seemed to unite some of the best blessings of existence.",
    "\"Impossible!--I never can call you any thing but 'Mr. Knightley.'\"",
    "a",
};

std::unique_ptr<PromptEncoder> LoadOrDie(const std::string& dir,
                                         const PromptEncoderOptions& options = {}) {
  absl::StatusOr<std::unique_ptr<PromptEncoder>> encoder = PromptEncoder::Load(dir, options);
  EXPECT_TRUE(encoder.ok()) << encoder.status();
  return encoder.ok() ? *std::move(encoder) : nullptr;
}

std::vector<float> ToVector(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// Token ids, codes and sketch of the encoder against the full engine's, bit for bit.
void ExpectSameAsEngine(const PromptEncoder& encoder, const Model& model,
                        const ECacheOptions& ecache, const std::vector<int32_t>& ids) {
  absl::StatusOr<EncodedPrompt> encoded = encoder.EncodeIds(ids);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  std::unique_ptr<Engine> engine = *Engine::Create(&model);
  at::Tensor sketch;
  absl::StatusOr<TokenCodes> codes = engine->EncodeCodes(ids, ecache, &sketch);
  ASSERT_TRUE(codes.ok()) << codes.status();
  EXPECT_EQ(encoded->token_ids, ids);
  EXPECT_EQ(encoded->codes.nbits, codes->nbits);
  EXPECT_EQ(encoded->codes.words, codes->words);
  EXPECT_EQ(encoded->sketch, ToVector(sketch));
}

TEST(PromptEncoderTest, TokensCodesAndSketchEqualTheEngines) {
  std::unique_ptr<PromptEncoder> encoder = LoadOrDie(AustenDir());
  ASSERT_NE(encoder, nullptr);
  const Model& model = AustenModel();
  for (const char* prompt : kPrompts) {
    absl::StatusOr<std::vector<int32_t>> ids = model.Tokenize(prompt, /*add_bos=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status();
    absl::StatusOr<EncodedPrompt> encoded = encoder->Encode(prompt);
    ASSERT_TRUE(encoded.ok()) << encoded.status();
    EXPECT_EQ(encoded->token_ids, *ids) << prompt;
    EXPECT_EQ(encoded->codes.size(), static_cast<int64_t>(ids->size()));
    EXPECT_EQ(encoded->sketch.size(), static_cast<size_t>(model.config().hidden_size));
    ExpectSameAsEngine(*encoder, model, ECacheOptions{}, *ids);
  }
}

TEST(PromptEncoderTest, LongPromptEqualsTheEngine) {
  std::unique_ptr<PromptEncoder> encoder = LoadOrDie(AustenDir());
  ASSERT_NE(encoder, nullptr);
  std::string text;
  for (int i = 0; i < 40; ++i) text += kPrompts[i % 3];
  absl::StatusOr<std::vector<int32_t>> ids = AustenModel().Tokenize(text, true);
  ASSERT_TRUE(ids.ok());
  ASSERT_GT(ids->size(), 1000u);  // positions far past the E-cache divisor
  ExpectSameAsEngine(*encoder, AustenModel(), ECacheOptions{}, *ids);
}

TEST(PromptEncoderTest, OtherECacheOptionsEqualTheEngine) {
  ECacheOptions ecache;
  ecache.nbits = 128;
  ecache.position_divisor = 64;
  ecache.seed = 99;
  PromptEncoderOptions options;
  options.ecache = ecache;
  std::unique_ptr<PromptEncoder> encoder = LoadOrDie(AustenDir(), options);
  ASSERT_NE(encoder, nullptr);
  const std::vector<int32_t> ids = *AustenModel().Tokenize(kPrompts[1], true);
  ExpectSameAsEngine(*encoder, AustenModel(), ecache, ids);
  ecache.use_rope = false;
  options.ecache = ecache;
  encoder = LoadOrDie(AustenDir(), options);
  ASSERT_NE(encoder, nullptr);
  ExpectSameAsEngine(*encoder, AustenModel(), ecache, ids);
}

TEST(PromptEncoderTest, Bfloat16WorkersGetTheirCodes) {
  PromptEncoderOptions options;
  options.dtype = "bfloat16";
  std::unique_ptr<PromptEncoder> encoder = LoadOrDie(AustenDir(), options);
  ASSERT_NE(encoder, nullptr);
  ModelOptions model_options;
  model_options.dtype = "bfloat16";
  std::unique_ptr<Model> model = *Model::Load(AustenDir(), model_options);
  ExpectSameAsEngine(*encoder, *model, ECacheOptions{}, *model->Tokenize(kPrompts[0], true));
}

TEST(PromptEncoderTest, HoldsFarLessThanTheModel) {
  std::unique_ptr<PromptEncoder> encoder = LoadOrDie(AustenDir());
  ASSERT_NE(encoder, nullptr);
  absl::StatusOr<Checkpoint> checkpoint = LoadCheckpoint(AustenDir());
  ASSERT_TRUE(checkpoint.ok());
  int64_t model_bytes = 0;  // every tensor in the same compute dtype (float32 on the CPU)
  for (const auto& [name, tensor] : checkpoint->tensors) model_bytes += tensor.numel() * 4;
  const int64_t embedding_bytes =
      checkpoint->config.vocab_size * checkpoint->config.hidden_size * 4;
  EXPECT_EQ(encoder->resident_bytes(),
            embedding_bytes + checkpoint->config.hidden_size * ECacheOptions{}.nbits * 4);
  // austen-5m is a tiny model with a large vocabulary share (~20%); an 8B model's is ~6%.
  EXPECT_LT(encoder->resident_bytes() * 4, model_bytes)
      << encoder->resident_bytes() << " of " << model_bytes;
}

TEST(PromptEncoderTest, RejectsEmptyAndOutOfVocabularyPrompts) {
  std::unique_ptr<PromptEncoder> encoder = LoadOrDie(AustenDir());
  ASSERT_NE(encoder, nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(encoder->EncodeIds({}).status()));
  const absl::Status too_big = encoder->EncodeIds({1, 4096}).status();
  EXPECT_TRUE(absl::IsInvalidArgument(too_big));
  EXPECT_THAT(too_big.message(), HasSubstr("token 1 has id 4096"));
  EXPECT_TRUE(absl::IsInvalidArgument(encoder->EncodeIds({-1}).status()));
}

TEST(PromptEncoderTest, CheckpointWithoutTokenizerEncodesIdsOnly) {
  const std::string dir = FreshTestDir("prompt_encoder_random");
  ModelConfig config = *PresetConfig("tiny");
  ASSERT_TRUE(WriteRandomCheckpoint(config, 5, "bfloat16", dir).ok());
  std::unique_ptr<PromptEncoder> encoder = LoadOrDie(dir);
  ASSERT_NE(encoder, nullptr);
  EXPECT_EQ(encoder->tokenizer(), nullptr);
  EXPECT_TRUE(absl::IsFailedPrecondition(encoder->Encode("hello").status()));
  std::unique_ptr<Model> model = *Model::Load(dir, ModelOptions{});
  ExpectSameAsEngine(*encoder, *model, ECacheOptions{}, {0, 17, 4095, 17, 3});
  fs::remove_all(dir);
}

TEST(PromptEncoderTest, ReadsOnlyTheEmbeddingTensor) {
  absl::StatusOr<TensorMap> tensors = ReadCheckpointTensors(
      AustenDir(), [](const std::string& name) { return name == "model.embed_tokens.weight"; });
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  ASSERT_EQ(tensors->size(), 1u);
  EXPECT_EQ(tensors->begin()->first, "model.embed_tokens.weight");
}

TEST(PromptEncoderTest, BadCheckpointsAndOptionsAreClearErrors) {
  const absl::Status missing = PromptEncoder::Load("/nonexistent/model", {}).status();
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.message(), HasSubstr("/nonexistent/model"));

  PromptEncoderOptions bad_dtype;
  bad_dtype.dtype = "int8";
  EXPECT_THAT(PromptEncoder::Load(AustenDir(), bad_dtype).status().message(), HasSubstr("int8"));
  PromptEncoderOptions bad_device;
  bad_device.worker_device = "tpu:7";
  EXPECT_FALSE(PromptEncoder::Load(AustenDir(), bad_device).ok());
  PromptEncoderOptions bad_bits;
  bad_bits.ecache.nbits = 100;
  EXPECT_THAT(PromptEncoder::Load(AustenDir(), bad_bits).status().message(), HasSubstr("nbits"));

  // A checkpoint whose weights lack the embedding.
  const std::string dir = FreshTestDir("prompt_encoder_no_embedding");
  ASSERT_TRUE(WriteStringToFile(JoinPath(dir, "config.json"),
                                *ReadFileToString(JoinPath(AustenDir(), "config.json")))
                  .ok());
  ASSERT_TRUE(WriteSafetensorsFile(JoinPath(dir, "model.safetensors"),
                                   {{"model.norm.weight", at::ones({256})}})
                  .ok());
  const absl::Status no_embedding = PromptEncoder::Load(dir, {}).status();
  EXPECT_TRUE(absl::IsInvalidArgument(no_embedding));
  EXPECT_THAT(no_embedding.message(), HasSubstr("model.embed_tokens.weight' missing"));

  // One of the wrong shape.
  ASSERT_TRUE(WriteSafetensorsFile(JoinPath(dir, "model.safetensors"),
                                   {{"model.embed_tokens.weight", at::ones({4096, 128})}})
                  .ok());
  EXPECT_THAT(PromptEncoder::Load(dir, {}).status().message(),
              HasSubstr("has shape [4096, 128], expected [4096, 256]"));
  fs::remove_all(dir);
}

// As Model::Load: a tokenizer with more tokens than the model's vocabulary is refused.
TEST(PromptEncoderTest, RefusesATokenizerLargerThanTheVocabulary) {
  const std::string dir = FreshTestDir("prompt_encoder_small_vocab");
  ModelConfig config = *PresetConfig("tiny");
  config.vocab_size = 512;
  ASSERT_TRUE(WriteRandomCheckpoint(config, 5, "float32", dir).ok());
  ASSERT_TRUE(WriteStringToFile(JoinPath(dir, "tokenizer.model"),
                                *ReadFileToString(JoinPath(AustenDir(), "tokenizer.model")))
                  .ok());
  const absl::Status status = PromptEncoder::Load(dir, {}).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("4096 tokens, more than config.json's vocab_size 512"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace semshare
