#ifndef SEMSHARE_TESTS_INFERENCE_WORKER_TEST_MODEL_UTIL_H_
#define SEMSHARE_TESTS_INFERENCE_WORKER_TEST_MODEL_UTIL_H_

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/json.h"
#include "gtest/gtest.h"
#include "inference_worker/engine/engine.h"
#include "inference_worker/engine/model.h"

namespace semshare {

inline std::string AustenDir() { return std::string(SEMSHARE_TEST_DATA_DIR) + "/austen-5m"; }

// An empty directory under the test temp dir, named by `tag` (emptied if it exists).
inline std::string FreshTestDir(const std::string& tag) {
  const std::string dir = JoinPath(::testing::TempDir(), "semshare_test_" + tag);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// The trained fixture model, loaded once per test binary (read-only after loading).
inline const Model& AustenModel() {
  static const Model* const model = [] {
    absl::StatusOr<std::unique_ptr<Model>> loaded = Model::Load(AustenDir(), ModelOptions{});
    if (!loaded.ok()) {
      ADD_FAILURE() << loaded.status();
      std::abort();
    }
    return loaded->release();
  }();
  return *model;
}

// The opening of Pride and Prejudice and a paraphrase of it (a few words changed): a hit.
inline constexpr const char* kReference =
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife. However little known the feelings or views of such a man may be on "
    "his first entering a neighbourhood, this truth is so well fixed in the minds of the "
    "surrounding families, that he is considered the rightful property of some one or other of "
    "their daughters.";
inline constexpr const char* kParaphrase =
    "It is a truth universally known, that a single man in possession of a large fortune, must be "
    "in want of a wife. However little known the feelings or views of such a man might be on his "
    "first entering the neighbourhood, this truth is so firmly fixed in the minds of the "
    "surrounding families, that he is thought the rightful property of one or other of their "
    "daughters.";

// Reuse with neither the bypass nor the similarity threshold in the way.
inline ReuseOptions NoBypass() {
  ReuseOptions options;
  options.bypass = false;
  options.similarity_threshold = 0.0;
  return options;
}

// NoBypass without retention: the exactness checks compare caches that nothing pruned.
inline ReuseOptions NoBypassNoRetention() {
  ReuseOptions options = NoBypass();
  options.retention = RetentionOptions{};
  return options;
}

// A JSON array of numbers as token ids.
inline std::vector<int32_t> Ints(const Json& array) {
  std::vector<int32_t> out;
  for (const Json& v : array.array_items()) out.push_back(static_cast<int32_t>(v.number_value()));
  return out;
}

// The cases of austen-5m-reference.json, computed by an independent fp32 implementation.
inline Json ReferenceCases() {
  return ParseJson(
             ReadFileToString(std::string(SEMSHARE_TEST_DATA_DIR) + "/austen-5m-reference.json")
                 .value())
      .value()["cases"];
}

// `text` as token ids after the tokenizer's BOS.
inline std::vector<int32_t> EncodeWithBos(const Model& model, const std::string& text) {
  std::vector<int32_t> ids = model.tokenizer()->Encode(text).value();
  ids.insert(ids.begin(), model.tokenizer()->bos_id());
  return ids;
}

// Full prefill and greedy decode on `model`'s device reproduce the reference cases: the first
// top-5 ids exactly, their logits within `logit_tolerance`, every greedy token.
inline void ExpectReproducesReferenceOutputs(const Model& model, double logit_tolerance) {
  const Json cases = ReferenceCases();
  ASSERT_GE(cases.array_items().size(), 6u);
  for (const Json& c : cases.array_items()) {
    const std::vector<int32_t> prompt = Ints(c["prompt_ids"]);
    const std::vector<int32_t> expected = Ints(c["greedy_ids"]);
    KVCache cache = model.NewCache(static_cast<int64_t>(prompt.size() + expected.size()));
    at::Tensor logits = model.Prefill(prompt, &cache);
    ASSERT_EQ(logits.device().type(), model.device().type());  // "cuda" names no index

    const std::vector<int32_t> top5 = Ints(c["first_top5_ids"]);
    const auto top = logits.topk(5);
    for (int k = 0; k < 5; ++k) {
      EXPECT_EQ(std::get<1>(top)[k].item<int64_t>(), top5[k]) << c["prompt"].string_value();
      EXPECT_NEAR(std::get<0>(top)[k].item<double>(),
                  c["first_top5_logits"].array_items()[k].number_value(), logit_tolerance);
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

// kParaphrase served on `model` twice, 24 greedy tokens each: by full prefill, and by
// SemShareKV from kReference recomputing every token in every layer.
struct FullAndFullyRecomputed {
  GenerateResult full;
  GenerateResult recomputed;
};
inline FullAndFullyRecomputed ServeFullAndFullyRecomputed(const Model& model) {
  auto engine = Engine::Create(&model).value();
  const Reference reference = engine->BuildReference(EncodeWithBos(model, kReference)).value();
  const std::vector<int32_t> target = EncodeWithBos(model, kParaphrase);
  SamplingOptions sampling;
  sampling.max_tokens = 24;
  ReuseOptions full = NoBypassNoRetention();
  full.method = ReuseMethod::kFull;
  ReuseOptions all = NoBypassNoRetention();
  all.recompute.hd_share = 1.0;
  all.recompute.decay = 1.0;
  return {engine->Generate(target, nullptr, full, sampling).value(),
          engine->Generate(target, &reference, all, sampling).value()};
}

}  // namespace semshare

#endif  // SEMSHARE_TESTS_INFERENCE_WORKER_TEST_MODEL_UTIL_H_
