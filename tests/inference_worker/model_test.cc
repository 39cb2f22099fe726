#include "inference_worker/engine/model.h"

#include <ATen/ATen.h>

#include "common/file_util.h"
#include "common/json.h"
#include "gtest/gtest.h"
#include "tests/inference_worker/test_model_util.h"

namespace semshare {
namespace {

std::vector<int32_t> Ints(const Json& array) {
  std::vector<int32_t> out;
  for (const Json& v : array.array_items()) out.push_back(static_cast<int32_t>(v.number_value()));
  return out;
}

// Full prefill and greedy decode must reproduce an independent fp32 implementation's output.
TEST(ModelTest, ReproducesIndependentReferenceOutputs) {
  const Model& model = AustenModel();
  absl::StatusOr<std::string> text =
      ReadFileToString(std::string(SEMSHARE_TEST_DATA_DIR) + "/austen-5m-reference.json");
  ASSERT_TRUE(text.ok());
  absl::StatusOr<Json> doc = ParseJson(*text);
  ASSERT_TRUE(doc.ok());
  ASSERT_GE((*doc)["cases"].array_items().size(), 6u);
  for (const Json& c : (*doc)["cases"].array_items()) {
    const std::vector<int32_t> prompt = Ints(c["prompt_ids"]);
    const std::vector<int32_t> expected = Ints(c["greedy_ids"]);
    KVCache cache = model.NewCache(static_cast<int64_t>(prompt.size() + expected.size()));
    at::Tensor logits = model.Prefill(prompt, &cache);

    const std::vector<int32_t> top5 = Ints(c["first_top5_ids"]);
    const auto top = logits.topk(5);
    for (int k = 0; k < 5; ++k) {
      EXPECT_EQ(std::get<1>(top)[k].item<int64_t>(), top5[k]) << c["prompt"].string_value();
      EXPECT_NEAR(std::get<0>(top)[k].item<double>(),
                  c["first_top5_logits"].array_items()[k].number_value(), 2e-3);
    }
    std::vector<int32_t> generated;
    for (size_t t = 0; t < expected.size(); ++t) {
      const int32_t token = static_cast<int32_t>(logits.argmax().item<int64_t>());
      generated.push_back(token);
      logits = model.DecodeStep(token, static_cast<int64_t>(prompt.size() + t), &cache);
    }
    EXPECT_EQ(generated, expected) << c["prompt"].string_value();
  }
}

TEST(ModelTest, TokenizerMatchesReferencePromptIds) {
  const Model& model = AustenModel();
  ASSERT_NE(model.tokenizer(), nullptr);
  absl::StatusOr<Json> doc = ParseJson(
      ReadFileToString(std::string(SEMSHARE_TEST_DATA_DIR) + "/austen-5m-reference.json").value());
  ASSERT_TRUE(doc.ok());
  for (const Json& c : (*doc)["cases"].array_items()) {
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

TEST(ModelTest, RefusesUnknownDeviceAndDtype) {
  ModelOptions options;
  options.dtype = "int8";
  EXPECT_FALSE(Model::Load(AustenDir(), options).ok());
  options.dtype = "auto";
  options.device = "tpu";
  EXPECT_FALSE(Model::Load(AustenDir(), options).ok());
}

}  // namespace
}  // namespace semshare
