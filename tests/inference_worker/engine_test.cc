#include "inference_worker/engine/engine.h"

#include <ATen/ATen.h>

#include <cmath>

#include "common/error_code.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference_worker/engine/kv_rearrange.h"
#include "tests/inference_worker/test_model_util.h"

namespace semshare {
namespace {

using ::testing::HasSubstr;

std::vector<int32_t> Encode(const std::string& text) { return EncodeWithBos(AustenModel(), text); }

TEST(RearrangeTest, ReRotationMovesKeysToTargetPositions) {
  const Rope rope(32, 10000.0, std::nullopt);
  const at::Tensor raw = at::randn({4, 10, 32});
  const at::Tensor ref_positions = at::arange(10, at::kLong);
  const LayerKV reference(rope.Apply(raw, ref_positions), at::randn({4, 10, 32}), ref_positions);
  const at::Tensor source = at::tensor(std::vector<int64_t>{9, 3, 3, 0}, at::kLong);
  const at::Tensor target_positions = at::arange(4, at::kLong);
  const LayerKV moved = RearrangeLayer(reference, source, target_positions, rope, true);
  const at::Tensor expected = rope.Apply(raw.index_select(1, source), target_positions);
  EXPECT_TRUE(at::allclose(moved.k(), expected, 1e-4, 1e-4));
  EXPECT_TRUE(at::equal(moved.v(), reference.v().index_select(1, source)));
  // Without re-rotation the keys keep their reference positions' rotation.
  const LayerKV kept = RearrangeLayer(reference, source, target_positions, rope, false);
  EXPECT_TRUE(at::equal(kept.k(), reference.k().index_select(1, source)));
}

TEST(EngineTest, IdenticalTargetRearrangesToReferenceKvBitForBit) {
  const Model& model = AustenModel();
  auto engine = Engine::Create(&model).value();
  const std::vector<int32_t> ids = Encode(kReference);
  const Reference reference = engine->BuildReference(ids).value();
  const TokenCodes codes = engine->EncodeCodes(ids, ECacheOptions{}).value();
  const TokenMapping mapping = MapTokens(codes, reference.codes, MappingOptions{}).value();
  EXPECT_DOUBLE_EQ(mapping.similarity, 1.0);
  const int64_t n = static_cast<int64_t>(ids.size());
  const at::Tensor source =
      at::tensor(std::vector<int64_t>(mapping.source.begin(), mapping.source.end()));
  const KVCache rearranged =
      RearrangeKV(reference.kv, source, at::arange(n, at::kLong), model.rope(), true);
  for (size_t l = 0; l < rearranged.layers.size(); ++l) {
    EXPECT_TRUE(at::equal(rearranged.layers[l].k(), reference.kv.layers[l].k())) << "layer " << l;
    EXPECT_TRUE(at::equal(rearranged.layers[l].v(), reference.kv.layers[l].v())) << "layer " << l;
  }

  // Served with 0% high-deviation recompute, every token outside the forced set (last tokens)
  // in layers 1.. keeps the reference's KV exactly.
  ReuseOptions options = NoBypassNoRetention();
  options.recompute.hd_share = 0.0;
  options.recompute.min_share = 0.0;
  options.recompute.last_tokens = 1;
  const PrefillOutcome served = engine->Prefill(ids, &reference, options).value();
  EXPECT_TRUE(served.hit);
  for (size_t l = 1; l < served.cache.layers.size(); ++l) {
    EXPECT_TRUE(at::equal(served.cache.layers[l].k().narrow(1, 0, n - 1),
                          reference.kv.layers[l].k().narrow(1, 0, n - 1)));
    EXPECT_TRUE(at::equal(served.cache.layers[l].v().narrow(1, 0, n - 1),
                          reference.kv.layers[l].v().narrow(1, 0, n - 1)));
  }
}

TEST(EngineTest, FullRecomputeEqualsFullPrefill) {
  const FullAndFullyRecomputed served = ServeFullAndFullyRecomputed(AustenModel());
  EXPECT_TRUE(served.recomputed.prefill.hit);
  EXPECT_DOUBLE_EQ(served.recomputed.prefill.recompute_share, 1.0);
  EXPECT_EQ(served.recomputed.tokens, served.full.tokens);
  EXPECT_TRUE(at::equal(served.recomputed.prefill.logits, served.full.prefill.logits));
}

TEST(EngineTest, ParaphraseHitKeepsGreedyOutputClose) {
  const Model& model = AustenModel();
  auto engine = Engine::Create(&model).value();
  const Reference reference = engine->BuildReference(Encode(kReference)).value();
  const std::vector<int32_t> target = Encode(kParaphrase);
  SamplingOptions sampling;
  sampling.max_tokens = 16;
  ReuseOptions options = NoBypass();
  options.similarity_threshold = 0.8;
  const GenerateResult hit = engine->Generate(target, &reference, options, sampling).value();
  ASSERT_TRUE(hit.prefill.hit) << hit.prefill.similarity;
  EXPECT_GT(hit.prefill.similarity, 0.8);
  EXPECT_LT(hit.prefill.recompute_share, 0.5);
  EXPECT_GT(hit.prefill.unmatched_tokens, 0);  // the edited words

  ReuseOptions full = NoBypass();
  full.method = ReuseMethod::kFull;
  const GenerateResult expected = engine->Generate(target, nullptr, full, sampling).value();
  EXPECT_EQ(hit.tokens.front(), expected.tokens.front());
}

// What a cache node's FetchKV streams: every layer's rows gathered by the mapping, each
// carrying its reference position.
KVCache GatherLikeACacheNode(const KVCache& reference, const TokenMapping& mapping) {
  const at::Tensor source =
      at::tensor(std::vector<int64_t>(mapping.source.begin(), mapping.source.end()), at::kLong);
  KVCache gathered;
  for (const LayerKV& layer : reference.layers) {
    gathered.layers.emplace_back(layer.k().index_select(1, source).clone(),
                                 layer.v().index_select(1, source).clone(), source.clone());
  }
  return gathered;
}

// The reference prompt built as a reference and the paraphrase mapped onto it: what the
// gathered-KV tests serve a hit from.
struct GatheredHit {
  std::unique_ptr<Engine> engine;
  Reference reference;
  std::vector<int32_t> target;
  ReuseOptions options;
  TokenMapping mapping;
};

GatheredHit MakeGatheredHit() {
  GatheredHit hit;
  hit.engine = Engine::Create(&AustenModel()).value();
  hit.reference = hit.engine->BuildReference(Encode(kReference)).value();
  hit.target = Encode(kParaphrase);
  hit.options = NoBypass();
  hit.mapping = MapTokens(hit.engine->EncodeCodes(hit.target, hit.options.ecache).value(),
                          hit.reference.codes, hit.options.mapping)
                    .value();
  return hit;
}

TEST(EngineTest, GatheredKvServesExactlyAsTheReference) {
  const auto [engine, reference, target, options, mapping] = MakeGatheredHit();
  SamplingOptions sampling;
  sampling.max_tokens = 12;
  const GenerateResult want = engine->Generate(target, &reference, options, sampling).value();
  ASSERT_TRUE(want.prefill.hit);
  const GenerateResult got =
      engine
          ->GenerateGathered(target, mapping, GatherLikeACacheNode(reference.kv, mapping), options,
                             sampling)
          .value();
  EXPECT_TRUE(got.prefill.hit);
  EXPECT_EQ(got.prefill.method, "semshare");
  EXPECT_TRUE(at::equal(got.prefill.logits, want.prefill.logits));
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_DOUBLE_EQ(got.prefill.recompute_share, want.prefill.recompute_share);
  EXPECT_EQ(got.prefill.layer_budgets, want.prefill.layer_budgets);
}

// Gathered layers handed out one at a time, recording the order they were asked for; fails
// at `fail_at` as a broken transfer would.
class LayerByLayer : public GatheredLayerSource {
 public:
  LayerByLayer(KVCache cache, int64_t fail_at) : cache_(std::move(cache)), fail_at_(fail_at) {}
  absl::StatusOr<LayerKV> Layer(int64_t l) override {
    asked.push_back(l);
    if (l == fail_at_) return absl::DataLossError("the transfer broke");
    return cache_.layers[static_cast<size_t>(l)];
  }
  std::vector<int64_t> asked;

 private:
  KVCache cache_;
  int64_t fail_at_;
};

TEST(EngineTest, LayersArrivingOneAtATimeServeAsTheWholeCache) {
  const auto [engine, reference, target, options, mapping] = MakeGatheredHit();
  SamplingOptions sampling;
  sampling.max_tokens = 12;
  const GenerateResult want =
      engine
          ->GenerateGathered(target, mapping, GatherLikeACacheNode(reference.kv, mapping), options,
                             sampling)
          .value();
  LayerByLayer layers(GatherLikeACacheNode(reference.kv, mapping), /*fail_at=*/-1);
  const GenerateResult got =
      engine->GenerateGathered(target, mapping, &layers, options, sampling).value();
  std::vector<int64_t> in_order(static_cast<size_t>(AustenModel().num_layers()));
  for (size_t l = 0; l < in_order.size(); ++l) in_order[l] = static_cast<int64_t>(l);
  EXPECT_EQ(layers.asked, in_order);
  EXPECT_TRUE(at::equal(got.prefill.logits, want.prefill.logits));
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_EQ(got.prefill.layer_budgets, want.prefill.layer_budgets);
  EXPECT_GE(got.prefill.times.kv_wait_ms, 0.0);

  // A transfer that breaks after the first layers ends the prefill with its error.
  LayerByLayer broken(GatherLikeACacheNode(reference.kv, mapping), /*fail_at=*/2);
  const absl::StatusOr<PrefillOutcome> failed =
      engine->PrefillGathered(target, mapping, &broken, options);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(broken.asked, (std::vector<int64_t>{0, 1, 2}));

  // A layer of the wrong shape is refused when it arrives.
  KVCache cut = GatherLikeACacheNode(reference.kv, mapping);
  cut.layers[1] = LayerKV(cut.layers[1].k().narrow(1, 0, 3), cut.layers[1].v().narrow(1, 0, 3),
                          cut.layers[1].positions().narrow(0, 0, 3));
  LayerByLayer wrong(std::move(cut), /*fail_at=*/-1);
  EXPECT_EQ(engine->PrefillGathered(target, mapping, &wrong, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EngineTest, AMissYieldsItsPromptAsAReferenceWithoutASecondPrefill) {
  const Model& model = AustenModel();
  auto engine = Engine::Create(&model).value();
  const std::vector<int32_t> prompt = Encode(kReference);
  ReuseOptions options = NoBypass();
  options.retention.policy =
      RetentionPolicy::kExpDecay;  // the served cache is pruned, the reference not
  SamplingOptions sampling;
  sampling.max_tokens = 10;
  const auto [result, reference] = engine->GenerateMiss(prompt, options, sampling).value();
  const GenerateResult want = engine->Generate(prompt, nullptr, options, sampling).value();
  EXPECT_EQ(result.tokens, want.tokens);
  EXPECT_LT(result.prefill.kv_kept_share, 1.0);
  const Reference built = engine->BuildReference(prompt, options.ecache).value();
  EXPECT_EQ(reference.ids, built.ids);
  EXPECT_EQ(reference.codes.words, built.codes.words);
  EXPECT_TRUE(at::equal(reference.sketch, built.sketch));
  ASSERT_EQ(reference.kv.layers.size(), built.kv.layers.size());
  for (size_t l = 0; l < built.kv.layers.size(); ++l) {
    EXPECT_TRUE(at::equal(reference.kv.layers[l].k(), built.kv.layers[l].k())) << l;
    EXPECT_TRUE(at::equal(reference.kv.layers[l].v(), built.kv.layers[l].v())) << l;
    EXPECT_TRUE(at::equal(reference.kv.layers[l].positions(), built.kv.layers[l].positions())) << l;
  }
}

TEST(EngineTest, GatheredKvOfTheWrongShapeIsRefused) {
  const auto [engine, reference, target, options, mapping] = MakeGatheredHit();
  KVCache short_cache = GatherLikeACacheNode(reference.kv, mapping);
  short_cache.layers.pop_back();
  EXPECT_EQ(
      engine->PrefillGathered(target, mapping, std::move(short_cache), options).status().code(),
      absl::StatusCode::kInvalidArgument);
  const std::vector<int32_t> longer(target.size() + 1, 5);
  EXPECT_EQ(
      engine->PrefillGathered(longer, mapping, GatherLikeACacheNode(reference.kv, mapping), options)
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(EngineTest, UnrelatedPromptIsAMiss) {
  const Model& model = AustenModel();
  auto engine = Engine::Create(&model).value();
  const Reference reference = engine->BuildReference(Encode(kReference)).value();
  ReuseOptions options;
  options.bypass = false;
  const PrefillOutcome out =
      engine
          ->Prefill(Encode("In the beginning God created the heaven and the earth. And the earth "
                           "was without form, "
                           "and void; and darkness was upon the face of the deep."),
                    &reference, options)
          .value();
  EXPECT_FALSE(out.hit);
  EXPECT_EQ(out.method, "full");
  EXPECT_LT(out.similarity, 0.8);
}

TEST(EngineTest, PrefixReusesTheCommonPrefixExactly) {
  const Model& model = AustenModel();
  auto engine = Engine::Create(&model).value();
  const std::vector<int32_t> ref_ids = Encode(kReference);
  const Reference reference = engine->BuildReference(ref_ids).value();
  std::vector<int32_t> target(ref_ids.begin(), ref_ids.begin() + 30);
  // A tail longer than the observation window, so that full prefill's window queries are all
  // computed by prefix reuse too.
  const std::vector<int32_t> tail = Encode(
      " and so it was, for she had never been in the habit of thinking of herself as one "
      "who could be made happy by so little, and she was not sorry to find it so.");
  target.insert(target.end(), tail.begin() + 1, tail.end());
  ReuseOptions prefix = NoBypass();
  prefix.method = ReuseMethod::kPrefix;
  prefix.retention.policy = RetentionPolicy::kExpDecay;
  prefix.retention.recent_window = 8;
  ReuseOptions full = prefix;
  full.method = ReuseMethod::kFull;
  const PrefillOutcome a = engine->Prefill(target, &reference, prefix).value();
  const PrefillOutcome b = engine->Prefill(target, &reference, full).value();
  EXPECT_EQ(a.reused_prefix_tokens, 30);
  EXPECT_TRUE(at::allclose(a.logits, b.logits, 1e-4, 1e-4));
  // The same cache after retention: the same tokens kept (the window's attention agrees) with
  // the same keys and values.
  ASSERT_EQ(a.cache.layers.size(), b.cache.layers.size());
  ASSERT_GT(target.size() - 30, static_cast<size_t>(prefix.observation_window));
  EXPECT_LT(a.cache.layers.back().size(), static_cast<int64_t>(target.size()));
  for (size_t l = 0; l < a.cache.layers.size(); ++l) {
    const LayerKV& x = a.cache.layers[l];
    const LayerKV& y = b.cache.layers[l];
    ASSERT_EQ(x.size(), y.size()) << "layer " << l;
    EXPECT_TRUE(at::equal(x.positions(), y.positions())) << "layer " << l;
    EXPECT_TRUE(at::allclose(x.k(), y.k(), 1e-4, 1e-4)) << "layer " << l;
    EXPECT_TRUE(at::allclose(x.v(), y.v(), 1e-4, 1e-4)) << "layer " << l;
  }
}

TEST(EngineTest, ExpDecayRetentionPrunesDeeperLayersMore) {
  const Model& model = AustenModel();
  auto engine = Engine::Create(&model).value();
  ReuseOptions options = NoBypass();
  options.method = ReuseMethod::kFull;
  options.retention.policy = RetentionPolicy::kExpDecay;
  const PrefillOutcome out = engine->Prefill(Encode(kReference), nullptr, options).value();
  for (size_t l = 1; l < out.cache.layers.size(); ++l) {
    EXPECT_LE(out.cache.layers[l].size(), out.cache.layers[l - 1].size());
  }
  EXPECT_LT(out.kv_kept_share, 0.7);
  SamplingOptions sampling;
  sampling.max_tokens = 8;
  EXPECT_EQ(engine->Generate(Encode(kReference), nullptr, options, sampling)->tokens.size(), 8u);
}

// One prefill serving several decodes (as the fidelity evaluation does): each copy decodes as a
// fresh prefill would, and decoding a copy, with decode-time eviction, leaves the original as
// it was.
TEST(EngineTest, ClonedPrefillDecodesAsAFreshOneAndLeavesTheOriginalWhole) {
  const Model& model = AustenModel();
  auto engine = Engine::Create(&model).value();
  const Reference reference = engine->BuildReference(Encode(kReference)).value();
  const std::vector<int32_t> target = Encode(kParaphrase);
  ReuseOptions options = NoBypass();
  options.similarity_threshold = 0.8;
  options.retention.policy = RetentionPolicy::kExpDecay;
  options.retention.recent_window = 4;  // a short prompt: leave room to evict during decode
  options.retention.decode_eviction = true;
  SamplingOptions sampling;
  sampling.max_tokens = 12;
  const GenerateResult fresh = engine->Generate(target, &reference, options, sampling).value();
  ASSERT_TRUE(fresh.prefill.hit);

  const PrefillOutcome prefill = engine->Prefill(target, &reference, options).value();
  std::vector<int64_t> sizes;
  std::vector<at::Tensor> keys;
  for (const LayerKV& layer : prefill.cache.layers) {
    sizes.push_back(layer.size());
    keys.push_back(layer.k().clone());
  }
  {
    // Deep: no tensor of the copy shares memory with the original.
    const PrefillOutcome copy = prefill.Clone();
    EXPECT_NE(copy.logits.data_ptr(), prefill.logits.data_ptr());
    for (size_t l = 0; l < sizes.size(); ++l) {
      EXPECT_NE(copy.cache.layers[l].k().data_ptr(), prefill.cache.layers[l].k().data_ptr());
      EXPECT_NE(copy.cache.layers[l].v().data_ptr(), prefill.cache.layers[l].v().data_ptr());
      EXPECT_NE(copy.stats[l].window_mass.data_ptr(), prefill.stats[l].window_mass.data_ptr());
    }
  }
  for (int copy = 0; copy < 2; ++copy) {
    const GenerateResult decoded = engine->GenerateFrom(prefill.Clone(), options, sampling).value();
    EXPECT_EQ(decoded.tokens, fresh.tokens) << "copy " << copy;
    EXPECT_EQ(decoded.kv_kept_share, fresh.kv_kept_share);
  }
  ASSERT_EQ(prefill.cache.layers.size(), sizes.size());
  for (size_t l = 0; l < sizes.size(); ++l) {
    EXPECT_EQ(prefill.cache.layers[l].size(), sizes[l]) << "layer " << l;
    EXPECT_TRUE(at::equal(prefill.cache.layers[l].k(), keys[l])) << "layer " << l;
  }
  // Decode eviction really ran: 11 decode steps appended to every layer, yet fewer were kept.
  const int64_t appended = 11 * static_cast<int64_t>(sizes.size());
  EXPECT_LT(fresh.prefill.cache.token_layers(), prefill.cache.token_layers() + appended);
}

TEST(EngineTest, BypassAddsMeasuredFixedCostsOnlyWhenAsked) {
  const Model& model = AustenModel();
  const ReuseOptions options;  // the defaults, bypass on
  // On the CPU the default is counted work alone.
  auto counted = Engine::Create(&model).value();
  const ReusePrediction plain = counted->Predict(300, 300, options);
  EXPECT_EQ(plain.full_fixed_ms, 0);
  EXPECT_EQ(plain.reuse_fixed_ms, 0);
  EXPECT_GT(plain.full_ms, 0);
  EXPECT_GT(plain.reuse_ms, 0);

  EngineOptions measure;
  measure.measure_fixed_costs = true;
  auto measured = Engine::Create(&model, measure).value();
  const ReusePrediction p = measured->Predict(300, 300, options);
  for (double v : {p.full_fixed_ms, p.reuse_fixed_ms}) {
    EXPECT_TRUE(std::isfinite(v));
    EXPECT_GE(v, 0);
  }
  // On the CPU both fixed costs add to the counted work.
  EXPECT_DOUBLE_EQ(p.full_ms, p.full_fixed_ms + p.full_work_ms);
  EXPECT_DOUBLE_EQ(p.reuse_ms, p.reuse_fixed_ms + p.reuse_work_ms);
  // Measured once: every later prediction carries the same fixed costs, and grows with length
  // only by its counted work.
  const ReusePrediction longer = measured->Predict(600, 600, options);
  EXPECT_EQ(longer.full_fixed_ms, p.full_fixed_ms);
  EXPECT_EQ(longer.reuse_fixed_ms, p.reuse_fixed_ms);
  EXPECT_GT(longer.full_ms, p.full_ms);
  // The bypass decides by this prediction: reuse must cost under 90% of a full prefill.
  const bool expect_bypass = p.reuse_ms >= 0.9 * p.full_ms;
  EXPECT_EQ(measured->BypassReason(300, 300, options).has_value(), expect_bypass);

  // A GPU's rules: the speed comes from a real prefill, and a full prefill costs the larger of
  // its fixed costs and its counted work, so a prompt whose work is far below them costs just
  // them; a hit's fixed costs still add.
  measure.gpu_cost_model = true;
  auto overlapped = Engine::Create(&model, measure).value();
  for (int64_t tokens : {2, 300, 2000}) {
    const ReusePrediction o = overlapped->Predict(tokens, tokens, options);
    EXPECT_GT(o.full_work_ms, 0);
    EXPECT_DOUBLE_EQ(o.full_ms, std::max(o.full_fixed_ms, o.full_work_ms)) << tokens;
    EXPECT_DOUBLE_EQ(o.reuse_ms, o.reuse_fixed_ms + o.reuse_work_ms) << tokens;
  }

  // Measuring served requests on the engine; it still serves a hit as before.
  const Reference reference = measured->BuildReference(Encode(kReference)).value();
  const PrefillOutcome hit = measured->Prefill(Encode(kParaphrase), &reference, NoBypass()).value();
  EXPECT_TRUE(hit.hit);
}

TEST(EngineTest, BadRequestsGetClearErrors) {
  const Model& model = AustenModel();
  auto engine = Engine::Create(&model).value();
  EXPECT_EQ(engine->Prefill({}, nullptr, ReuseOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->Prefill({1, 99999}, nullptr, ReuseOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
  ReuseOptions bad;
  bad.similarity_threshold = 2;
  EXPECT_FALSE(engine->Prefill({1, 2, 3}, nullptr, bad).ok());
  Reference wrong;
  wrong.ids = {1, 2, 3};
  EXPECT_FALSE(engine->Prefill({1, 2, 3}, &wrong, ReuseOptions{}).ok());  // no KV layers
  EXPECT_FALSE(ParseReuseMethod("magic").ok());
}

TEST(EngineTest, RequestsPastTheModelsContextAreRefusedBeforeAnyWork) {
  const Model& model = AustenModel();
  ASSERT_EQ(model.config().max_position_embeddings, 2048);
  auto engine = Engine::Create(&model).value();
  const std::vector<int32_t> too_long(2049, 5);
  const absl::Status prefill = engine->Prefill(too_long, nullptr, ReuseOptions{}).status();
  EXPECT_EQ(prefill.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(prefill.message(),
              HasSubstr("the prompt has 2049 tokens, more than the model's context of 2048"));
  EXPECT_EQ(ErrorCode(prefill), kContextLengthExceeded);
  EXPECT_EQ(engine->BuildReference(too_long).status().code(), absl::StatusCode::kInvalidArgument);

  // 2,000 prompt tokens leave room for 48 generated ones.
  const std::vector<int32_t> long_prompt(2000, 5);
  SamplingOptions sampling;
  sampling.max_tokens = 49;
  const absl::Status generate =
      engine->Generate(long_prompt, nullptr, ReuseOptions{}, sampling).status();
  EXPECT_EQ(generate.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(generate.message(), HasSubstr("max_tokens can be at most 48"));
  EXPECT_EQ(ErrorCode(generate), kContextLengthExceeded);
  EXPECT_EQ(engine->GenerateMiss(long_prompt, ReuseOptions{}, sampling).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<PrefillOutcome> prefilled = engine->Prefill(long_prompt, nullptr, ReuseOptions{});
  ASSERT_TRUE(prefilled.ok()) << prefilled.status();
  EXPECT_EQ(engine->GenerateFrom(*prefilled, ReuseOptions{}, sampling).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Exactly the context is served.
  sampling.max_tokens = 48;
  absl::StatusOr<GenerateResult> fits =
      engine->GenerateFrom(std::move(*prefilled), ReuseOptions{}, sampling);
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_FALSE(fits->tokens.empty());
}

TEST(EngineTest, SeededSamplingReplays) {
  const Model& model = AustenModel();
  auto engine = Engine::Create(&model).value();
  SamplingOptions sampling;
  sampling.max_tokens = 12;
  sampling.temperature = 0.9;
  sampling.top_p = 0.9;
  sampling.seed = 42;
  ReuseOptions full;
  full.method = ReuseMethod::kFull;
  const auto a = engine->Generate(Encode(kReference), nullptr, full, sampling).value();
  const auto b = engine->Generate(Encode(kReference), nullptr, full, sampling).value();
  EXPECT_EQ(a.tokens, b.tokens);
  sampling.stop_tokens = {a.tokens[3]};
  const auto c = engine->Generate(Encode(kReference), nullptr, full, sampling).value();
  EXPECT_LE(c.tokens.size(), 4u);
}

}  // namespace
}  // namespace semshare
