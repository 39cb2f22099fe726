#include "inference_worker/engine/engine.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "inference_worker/engine/kv_rearrange.h"

namespace semshare {
namespace {

using Clock = std::chrono::steady_clock;

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Waits for queued device work so stage timings mean something on CUDA.
void Sync(const at::Tensor& t) {
  if (t.defined() && t.is_cuda()) (void)t.sum().item<float>();
}

// n token ids drawn uniformly from the vocabulary.
std::vector<int32_t> RandomTokenIds(int64_t n, int64_t vocab_size, std::mt19937* rng) {
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab_size) - 1);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) id = token(*rng);
  return ids;
}

at::Tensor IndexTensor(const std::vector<int64_t>& indices, at::Device device) {
  return at::tensor(indices, at::kLong).to(device);
}

// Keeps a layer's attention stats in step with LayerKV::Keep(keep) on its cache.
void KeepStats(const at::Tensor& keep, LayerAttentionStats* stats) {
  for (at::Tensor* t : stats->tensors()) {
    if (t->defined()) *t = t->index_select(0, keep);
  }
}

}  // namespace

PrefillOutcome PrefillOutcome::Clone() const {
  PrefillOutcome copy = *this;  // the scalars and strings; the tensors are replaced below
  copy.cache = cache.Clone();
  if (logits.defined()) copy.logits = logits.clone();
  for (LayerAttentionStats& layer : copy.stats) {
    for (at::Tensor* t : layer.tensors()) {
      if (t->defined()) *t = t->clone();
    }
  }
  return copy;
}

absl::StatusOr<ReuseMethod> ParseReuseMethod(const std::string& name) {
  if (name == "full") return ReuseMethod::kFull;
  if (name == "prefix") return ReuseMethod::kPrefix;
  if (name == "semshare") return ReuseMethod::kSemShare;
  return absl::InvalidArgumentError(
      absl::StrCat("method '", name, "' is not one of full, prefix, semshare"));
}

std::string ReuseMethodName(ReuseMethod method) {
  switch (method) {
    case ReuseMethod::kFull:
      return "full";
    case ReuseMethod::kPrefix:
      return "prefix";
    case ReuseMethod::kSemShare:
      return "semshare";
  }
  return "unknown";
}

absl::Status ReuseOptions::Validate() const {
  if (!(similarity_threshold >= 0 && similarity_threshold <= 1)) {
    return absl::InvalidArgumentError("similarity_threshold must be in [0, 1]");
  }
  if (observation_window < 1) return absl::InvalidArgumentError("observation_window must be >= 1");
  SEMSHARE_RETURN_IF_ERROR(ecache.Validate());
  SEMSHARE_RETURN_IF_ERROR(mapping.Validate());
  SEMSHARE_RETURN_IF_ERROR(recompute.Validate());
  return retention.Validate();
}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const Model* model,
                                                       const EngineOptions& options) {
  if (model == nullptr) return absl::InvalidArgumentError("engine needs a model");
  const bool on_gpu = model->device().is_cuda();
  return std::unique_ptr<Engine>(new Engine(model, options.measure_fixed_costs.value_or(on_gpu),
                                            options.gpu_cost_model.value_or(on_gpu)));
}

absl::StatusOr<const TokenEncoder*> Engine::EncoderFor(const ECacheOptions& options) const {
  absl::MutexLock lock(&mutex_);
  const auto key =
      std::make_tuple(options.use_rope, options.position_divisor, options.nbits, options.seed);
  auto it = encoders_.find(key);
  if (it != encoders_.end()) return it->second.get();
  SEMSHARE_ASSIGN_OR_RETURN(TokenEncoder encoder,
                            TokenEncoder::Create(model_->config(), options, model_->device()));
  auto inserted = encoders_.emplace(key, std::make_unique<TokenEncoder>(std::move(encoder)));
  return inserted.first->second.get();
}

absl::StatusOr<TokenCodes> Engine::EncodeCodes(const std::vector<int32_t>& ids,
                                               const ECacheOptions& ecache,
                                               at::Tensor* sketch) const {
  if (ids.empty()) return absl::InvalidArgumentError("empty prompt");
  SEMSHARE_ASSIGN_OR_RETURN(const TokenEncoder* encoder, EncoderFor(ecache));
  const at::Tensor rotated = encoder->RotatedEmbeddings(model_->Embed(model_->IdsTensor(ids)));
  if (sketch != nullptr) *sketch = encoder->Sketch(rotated);
  return encoder->Encode(rotated);
}

absl::StatusOr<Reference> Engine::BuildReference(const std::vector<int32_t>& ids,
                                                 const ECacheOptions& ecache) const {
  if (ids.empty()) return absl::InvalidArgumentError("empty prompt");
  SEMSHARE_RETURN_IF_ERROR(CheckFitsContext(model_->config(), static_cast<int64_t>(ids.size()), 0));
  Reference reference;
  reference.ids = ids;
  reference.codes_options = ecache;
  SEMSHARE_ASSIGN_OR_RETURN(reference.codes, EncodeCodes(ids, ecache, &reference.sketch));
  reference.kv = model_->NewCache(static_cast<int64_t>(ids.size()));
  model_->Prefill(ids, &reference.kv);
  return reference;
}

absl::Status Engine::FullPrefill(const std::vector<int32_t>& target, const ReuseOptions& options,
                                 PrefillOutcome* out) const {
  const int64_t n = static_cast<int64_t>(target.size());
  const auto start = Clock::now();
  out->method = "full";
  out->cache = model_->NewCache(n);
  out->logits = model_->Prefill(target, &out->cache, &out->stats, options.observation_window,
                                options.retention.policy == RetentionPolicy::kH2O);
  Sync(out->logits);
  out->times.prefill_ms = MillisSince(start);
  out->recompute_share = 1.0;
  out->compute_share = 1.0;
  return absl::OkStatus();
}

absl::Status Engine::PrefixPrefill(const std::vector<int32_t>& target, const Reference& reference,
                                   const ReuseOptions& options, PrefillOutcome* out) const {
  const int64_t n = static_cast<int64_t>(target.size());
  int64_t prefix = 0;
  const int64_t limit = std::min<int64_t>(n, static_cast<int64_t>(reference.ids.size()));
  while (prefix < limit && target[prefix] == reference.ids[prefix]) ++prefix;
  // The last prompt token is always computed: its logits are the first output.
  prefix = std::min(prefix, n - 1);
  if (prefix == 0) return FullPrefill(target, options, out);

  const auto start = Clock::now();
  out->method = "prefix";
  out->hit = true;
  out->reused_prefix_tokens = prefix;
  out->cache = model_->NewCache(n);
  for (size_t l = 0; l < out->cache.layers.size(); ++l) {
    const LayerKV& source = reference.kv.layers[l];
    out->cache.layers[l].Append(source.k().narrow(1, 0, prefix), source.v().narrow(1, 0, prefix),
                                source.positions().narrow(0, 0, prefix));
  }
  const std::vector<int32_t> rest(target.begin() + prefix, target.end());
  // As a full prefill of the rest (its last layer runs only the rows read after it).
  out->logits = model_->Prefill(rest, &out->cache, &out->stats, options.observation_window,
                                options.retention.policy == RetentionPolicy::kH2O);
  Sync(out->logits);
  out->times.prefill_ms = MillisSince(start);
  out->recompute_share = static_cast<double>(n - prefix) / static_cast<double>(n);
  out->compute_share = out->recompute_share;
  return absl::OkStatus();
}

ReusePrediction Engine::PredictWork(int64_t target_tokens, int64_t reference_tokens,
                                    const ReuseOptions& options) const {
  const ModelConfig& c = model_->config();
  double flops_per_second = 0;
  double hamming_per_second = 0;
  {
    absl::MutexLock lock(&mutex_);
    if (flops_per_second_ == 0) {
      // Calibrate once, on first use: a projection-sized matmul (the best of three after a
      // warm-up) and one code scan. On a GPU the matmul takes 4,096 rows: with 256 it ran in
      // microseconds, as long as its launch and sync, and the measured speed varied 2x from
      // one machine to the next (H100, llama-3.2-1b).
      const auto options_f = at::TensorOptions().dtype(model_->dtype()).device(model_->device());
      const int64_t rows = model_->device().is_cuda() ? 4096 : 256;
      const at::Tensor a = at::randn({rows, c.hidden_size}, options_f);
      const at::Tensor b = at::randn({c.hidden_size, 4 * c.hidden_size}, options_f);
      // Waits on one element of the product: summing all of it would be timed too.
      const auto product = [&] { Sync(at::matmul(a, b).view(-1).narrow(0, 0, 1)); };
      product();
      double seconds = std::numeric_limits<double>::infinity();
      for (int run = 0; run < 3; ++run) {
        const auto t0 = Clock::now();
        product();
        seconds = std::min(seconds, std::max(1e-6, MillisSince(t0) / 1e3));
      }
      flops_per_second_ = 2.0 * static_cast<double>(rows) * static_cast<double>(c.hidden_size) *
                          4.0 * static_cast<double>(c.hidden_size) / seconds;

      TokenCodes codes;
      codes.nbits = options.ecache.nbits;
      std::mt19937_64 rng(1);
      codes.words.resize(512 * static_cast<size_t>(codes.words_per_code()));
      for (uint64_t& w : codes.words) w = rng();
      const auto t1 = Clock::now();
      (void)MapTokens(codes, codes, MappingOptions{});
      const double scan_seconds = std::max(1e-6, MillisSince(t1) / 1e3);
      hamming_words_per_second_ = 512.0 * 512.0 * codes.words_per_code() / scan_seconds;
    }
    flops_per_second = flops_per_second_;
    hamming_per_second = hamming_words_per_second_;
  }
  const double n = static_cast<double>(target_tokens);
  const double params_per_layer =
      static_cast<double>(c.hidden_size * (c.q_dim() + 2 * c.kv_dim()) + c.q_dim() * c.hidden_size +
                          3 * c.hidden_size * c.intermediate_size);
  // Linear layers plus causal attention (QK^T and PV over half the keys on average).
  const double layer_flops =
      2.0 * n * params_per_layer + 2.0 * n * n * static_cast<double>(c.q_dim());
  const double full = layer_flops * static_cast<double>(c.num_hidden_layers) / flops_per_second;
  // A layer's keys/values are projected for its whole recompute set, but its queries,
  // attention and MLP run only for the tokens that stay in the next layer's set.
  const std::vector<double> shares = RecomputeShares(options.recompute, c.num_hidden_layers);
  double share_sum = 0;
  double kv_share_sum = 0;
  for (size_t l = 0; l < shares.size(); ++l) {
    kv_share_sum += shares[l];
    if (l > 0) share_sum += shares[l];
  }
  const double kv_projection_flops = 2.0 * n * static_cast<double>(c.hidden_size * 2 * c.kv_dim());
  const int64_t words_per_code = (options.ecache.nbits + 63) / 64;
  const double scan = n * static_cast<double>(reference_tokens) *
                      static_cast<double>(words_per_code) / hamming_per_second;
  // Gather + re-rotation touch every reused K/V element a few times; count it as flops.
  const double rearrange = 8.0 * n * static_cast<double>(c.kv_dim()) *
                           static_cast<double>(c.num_hidden_layers) / flops_per_second;
  const double semshare =
      (layer_flops * share_sum + kv_projection_flops * kv_share_sum) / flops_per_second + scan +
      rearrange;
  ReusePrediction prediction;
  prediction.full_ms = prediction.full_work_ms = full * 1e3;
  prediction.reuse_ms = prediction.reuse_work_ms = semshare * 1e3;
  return prediction;
}

absl::StatusOr<double> Engine::BestPrefillMs(const std::vector<int32_t>& target,
                                             const Reference* reference, ReuseOptions options,
                                             int timed_runs) const {
  options.bypass = false;
  options.similarity_threshold = 0;
  double best = std::numeric_limits<double>::infinity();
  for (int run = 0; run <= timed_runs; ++run) {
    const auto start = Clock::now();
    SEMSHARE_ASSIGN_OR_RETURN(const PrefillOutcome out, Prefill(target, reference, options));
    if (run > 0) best = std::min(best, MillisSince(start));
  }
  return best;
}

absl::StatusOr<std::pair<double, double>> Engine::MeasureFixedCosts(
    const ReuseOptions& options) const {
  const ModelConfig& c = model_->config();
  // Short enough that fixed costs dominate, long enough for a recompute set in every layer.
  const int64_t n = std::clamp<int64_t>(c.max_position_embeddings, 2, 64);
  std::mt19937 rng(7);
  const std::vector<int32_t> reference_ids = RandomTokenIds(n, c.vocab_size, &rng);
  std::vector<int32_t> target = reference_ids;
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(c.vocab_size) - 1);
  for (size_t i = 5; i < target.size(); i += 8) target[i] = token(rng);
  SEMSHARE_ASSIGN_OR_RETURN(const Reference reference,
                            BuildReference(reference_ids, options.ecache));

  if (gpu_cost_model_) SEMSHARE_RETURN_IF_ERROR(CalibrateSpeedByPrefill(options));
  ReuseOptions o = options;
  o.method = ReuseMethod::kFull;
  SEMSHARE_ASSIGN_OR_RETURN(const double full_ms, BestPrefillMs(target, &reference, o, 3));
  o.method = ReuseMethod::kSemShare;
  SEMSHARE_ASSIGN_OR_RETURN(const double reuse_ms, BestPrefillMs(target, &reference, o, 3));
  const ReusePrediction work = PredictWork(n, n, options);
  return std::make_pair(std::max(0.0, full_ms - work.full_ms),
                        std::max(0.0, reuse_ms - work.reuse_ms));
}

absl::Status Engine::CalibrateSpeedByPrefill(const ReuseOptions& options) const {
  const ModelConfig& c = model_->config();
  const int64_t n = std::min<int64_t>(c.max_position_embeddings, 2048);
  std::mt19937 rng(11);
  ReuseOptions o = options;
  o.method = ReuseMethod::kFull;
  SEMSHARE_ASSIGN_OR_RETURN(const double measured,
                            BestPrefillMs(RandomTokenIds(n, c.vocab_size, &rng), nullptr, o, 2));
  // PredictWork counts at the matmul's speed; scale it so that this prefill is predicted as
  // measured.
  const double predicted = PredictWork(n, n, options).full_work_ms;
  absl::MutexLock lock(&mutex_);
  flops_per_second_ *= predicted / std::max(1e-3, measured);
  return absl::OkStatus();
}

ReusePrediction Engine::Predict(int64_t target_tokens, int64_t reference_tokens,
                                const ReuseOptions& options) const {
  ReusePrediction prediction = PredictWork(target_tokens, reference_tokens, options);
  if (!measure_fixed_costs_) return prediction;
  std::pair<double, double> fixed;
  {
    absl::MutexLock lock(&fixed_costs_mutex_);
    if (!fixed_costs_ms_.has_value()) {
      // A failed measurement leaves the prediction to counted work rather than fail requests.
      fixed_costs_ms_ = MeasureFixedCosts(options).value_or(std::make_pair(0.0, 0.0));
    }
    fixed = *fixed_costs_ms_;
  }
  prediction.full_fixed_ms = fixed.first;
  prediction.reuse_fixed_ms = fixed.second;
  prediction.full_ms = gpu_cost_model_ ? std::max(prediction.full_ms, fixed.first)
                                       : prediction.full_ms + fixed.first;
  prediction.reuse_ms += fixed.second;
  return prediction;
}

std::optional<std::string> Engine::BypassReason(int64_t target_tokens, int64_t reference_tokens,
                                                const ReuseOptions& options) const {
  if (!options.bypass) return std::nullopt;
  const ReusePrediction p = Predict(target_tokens, reference_tokens, options);
  if (p.reuse_ms < 0.9 * p.full_ms) return std::nullopt;
  std::string reason =
      absl::StrFormat("predicted reuse %.1f ms vs full prefill %.1f ms", p.reuse_ms, p.full_ms);
  if (p.full_fixed_ms > 0 || p.reuse_fixed_ms > 0) {
    absl::StrAppendFormat(&reason, " (fixed costs %.1f and %.1f ms)", p.reuse_fixed_ms,
                          p.full_fixed_ms);
  }
  return reason;
}

absl::StatusOr<bool> Engine::SemSharePrefill(const std::vector<int32_t>& target,
                                             const Reference& reference,
                                             const ReuseOptions& options,
                                             PrefillOutcome* out) const {
  const int64_t n = static_cast<int64_t>(target.size());
  const at::Device device = model_->device();

  auto stage = Clock::now();
  SEMSHARE_ASSIGN_OR_RETURN(const TokenEncoder* encoder, EncoderFor(options.ecache));
  const at::Tensor embeddings = model_->Embed(model_->IdsTensor(target));
  const TokenCodes codes = encoder->Encode(encoder->RotatedEmbeddings(embeddings));
  TokenCodes reference_codes_storage;
  const TokenCodes* reference_codes = &reference.codes;
  const ECacheOptions& rc = reference.codes_options;
  if (reference.codes.size() == 0 || rc.use_rope != options.ecache.use_rope ||
      rc.position_divisor != options.ecache.position_divisor || rc.nbits != options.ecache.nbits ||
      rc.seed != options.ecache.seed) {
    SEMSHARE_ASSIGN_OR_RETURN(reference_codes_storage, EncodeCodes(reference.ids, options.ecache));
    reference_codes = &reference_codes_storage;
  }
  out->times.encode_ms = MillisSince(stage);

  stage = Clock::now();
  SEMSHARE_ASSIGN_OR_RETURN(TokenMapping mapping,
                            MapTokens(codes, *reference_codes, options.mapping));
  out->times.match_ms = MillisSince(stage);
  out->similarity = mapping.similarity;
  if (mapping.similarity < options.similarity_threshold) return false;

  stage = Clock::now();
  const at::Tensor positions = at::arange(n, at::TensorOptions().dtype(at::kLong).device(device));
  const at::Tensor source =
      at::tensor(std::vector<int64_t>(mapping.source.begin(), mapping.source.end()), at::kLong)
          .to(device);
  out->cache = RearrangeKV(reference.kv, source, positions, model_->rope(), options.rerotate_keys);
  Sync(out->cache.layers.back().k());
  out->times.rearrange_ms = MillisSince(stage);
  SEMSHARE_RETURN_IF_ERROR(RecomputeRearranged(embeddings, mapping, options, {}, out));
  return true;
}

absl::Status Engine::RecomputeRearranged(const at::Tensor& embeddings, const TokenMapping& mapping,
                                         const ReuseOptions& options,
                                         const std::function<absl::Status(int64_t)>& prepare_layer,
                                         PrefillOutcome* out) const {
  const int64_t n = out->prompt_tokens;
  const int64_t num_layers = model_->num_layers();
  const at::Device device = model_->device();
  const auto stage = Clock::now();
  out->method = "semshare";
  out->hit = true;
  out->unmatched_tokens = mapping.num_unmatched;
  const std::vector<double> shares = RecomputeShares(options.recompute, num_layers);
  std::vector<uint8_t> must_keep(static_cast<size_t>(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    must_keep[i] = mapping.unmatched[i] || i >= n - options.recompute.last_tokens;
  }
  std::vector<int64_t> current(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) current[i] = i;
  std::vector<std::vector<uint8_t>> recomputed(static_cast<size_t>(num_layers));
  // Queries whose attention feeds the retention stats: the observation window, or every
  // computed query for H2O's accumulated mass.
  const bool stats_from_every_query = options.retention.policy == RetentionPolicy::kH2O;
  const int64_t window_start = n - options.observation_window;
  at::Tensor hidden = embeddings;
  int64_t recomputed_after_layer0 = 0;
  int64_t computed = 0;
  double prepare_ms = 0;
  out->stats.assign(static_cast<size_t>(num_layers), LayerAttentionStats{});
  for (int64_t l = 0; l < num_layers; ++l) {
    if (prepare_layer) {
      const auto prepare = Clock::now();
      SEMSHARE_RETURN_IF_ERROR(prepare_layer(l));
      prepare_ms += MillisSince(prepare);
    }
    LayerKV& layer = out->cache.layers[static_cast<size_t>(l)];
    const at::Tensor index = IndexTensor(current, device);
    const at::Tensor reused_k = layer.k().index_select(1, index).to(at::kFloat);
    const at::Tensor reused_v = layer.v().index_select(1, index).to(at::kFloat);
    const Model::PendingLayer pending = model_->WriteLayerKV(l, hidden, index, &layer, index);
    if (l > 0) recomputed_after_layer0 += static_cast<int64_t>(current.size());
    auto& mask = recomputed[static_cast<size_t>(l)];
    mask.assign(static_cast<size_t>(n), 0);
    for (int64_t i : current) mask[i] = 1;

    std::vector<int64_t> next;
    if (l + 1 < num_layers) {
      // Deviation of fresh from reused KV ranks which tokens stay in the set for the next layer.
      const at::Tensor dk = (layer.k().index_select(1, index).to(at::kFloat) - reused_k)
                                .pow(2)
                                .sum(at::IntArrayRef{0, 2})
                                .sqrt();
      const at::Tensor dv = (layer.v().index_select(1, index).to(at::kFloat) - reused_v)
                                .pow(2)
                                .sum(at::IntArrayRef{0, 2})
                                .sqrt();
      const at::Tensor deviation_tensor = (dk + dv).to(at::kCPU).contiguous();
      const float* dev = deviation_tensor.data_ptr<float>();
      const std::vector<float> deviation(dev, dev + current.size());
      std::vector<uint8_t> keep(current.size());
      for (size_t k = 0; k < current.size(); ++k) keep[k] = must_keep[current[k]];
      const int64_t target_count =
          static_cast<int64_t>(std::ceil(shares[l + 1] * static_cast<double>(n)));
      next = ShrinkRecomputeSet(current, deviation, keep, target_count);
    } else {
      next = {n - 1};  // only the last token's output is read: its logits are the first output
    }

    // The set only shrinks, so the outputs of tokens leaving it are never read: run the
    // queries, attention and MLP of the tokens that stay (and of the stats' queries) only.
    std::vector<int64_t> rows;       // into `current`
    std::vector<int64_t> next_rows;  // into `rows`
    size_t r = 0;
    for (size_t k = 0; k < current.size(); ++k) {
      const bool stays = r < next.size() && next[r] == current[k];
      if (stays) ++r;
      if (!stays && !stats_from_every_query && current[k] < window_start) continue;
      if (stays) next_rows.push_back(static_cast<int64_t>(rows.size()));
      rows.push_back(static_cast<int64_t>(k));
    }
    AttentionStatsRequest request{&out->stats[static_cast<size_t>(l)], window_start,
                                  stats_from_every_query};
    const at::Tensor finished = model_->FinishLayer(
        pending, rows.size() == current.size() ? at::Tensor() : IndexTensor(rows, device), layer,
        request);
    computed += static_cast<int64_t>(rows.size());
    hidden = next_rows.size() == rows.size()
                 ? finished
                 : finished.index_select(0, IndexTensor(next_rows, device));
    current = std::move(next);
  }
  out->logits = model_->Logits(hidden.narrow(0, hidden.size(0) - 1, 1)).squeeze(0);
  Sync(out->logits);
  // Time spent preparing layers (waiting for and re-rotating them) is accounted by the caller.
  out->times.prefill_ms = MillisSince(stage) - prepare_ms;
  out->recompute_share = num_layers > 1 ? static_cast<double>(recomputed_after_layer0) /
                                              static_cast<double>(n * (num_layers - 1))
                                        : 1.0;
  out->compute_share = static_cast<double>(computed) / static_cast<double>(n * num_layers);

  out->layer_budgets.clear();
  // Retention protects each layer's recompute set.
  ApplyRetention(options, recomputed, out);
  return absl::OkStatus();
}

namespace {

// Layers already in memory.
class GatheredCache : public GatheredLayerSource {
 public:
  explicit GatheredCache(KVCache cache) : cache_(std::move(cache)) {}
  absl::StatusOr<LayerKV> Layer(int64_t l) override {
    return std::move(cache_.layers[static_cast<size_t>(l)]);
  }

 private:
  KVCache cache_;
};

}  // namespace

absl::StatusOr<PrefillOutcome> Engine::PrefillGathered(const std::vector<int32_t>& target,
                                                       const TokenMapping& mapping,
                                                       KVCache gathered,
                                                       const ReuseOptions& options) const {
  if (gathered.layers.size() != static_cast<size_t>(model_->num_layers())) {
    return absl::InvalidArgumentError(absl::StrCat("gathered KV has ", gathered.layers.size(),
                                                   " layers, the model ", model_->num_layers()));
  }
  GatheredCache layers(std::move(gathered));
  return PrefillGathered(target, mapping, &layers, options);
}

absl::StatusOr<PrefillOutcome> Engine::PrefillGathered(const std::vector<int32_t>& target,
                                                       const TokenMapping& mapping,
                                                       GatheredLayerSource* layers,
                                                       const ReuseOptions& options) const {
  SEMSHARE_RETURN_IF_ERROR(ValidateTarget(target, options));
  const int64_t n = static_cast<int64_t>(target.size());
  if (static_cast<int64_t>(mapping.source.size()) != n ||
      static_cast<int64_t>(mapping.unmatched.size()) != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("mapping covers ", mapping.source.size(), " tokens, the prompt has ", n));
  }
  const ModelConfig& c = model_->config();
  PrefillOutcome out;
  out.prompt_tokens = n;
  out.similarity = mapping.similarity;
  try {
    auto stage = Clock::now();
    const at::Tensor embeddings = model_->Embed(model_->IdsTensor(target));
    out.times.encode_ms = MillisSince(stage);
    // Rows are already in target order: the identity gather leaves them bit for bit, and the
    // re-rotation reads each row's reference position from the gathered positions.
    const at::Tensor positions =
        at::arange(n, at::TensorOptions().dtype(at::kLong).device(model_->device()));
    LayerRearranger rearranger(&model_->rope(), options.rerotate_keys);
    out.cache.layers.resize(static_cast<size_t>(model_->num_layers()));
    const auto prepare_layer = [&](int64_t l) -> absl::Status {
      auto wait = Clock::now();
      SEMSHARE_ASSIGN_OR_RETURN(LayerKV layer, layers->Layer(l));
      out.times.kv_wait_ms += MillisSince(wait);
      if (layer.size() != n || layer.k().size(0) != c.num_key_value_heads ||
          layer.k().size(2) != c.head_dim || layer.v().sizes() != layer.k().sizes()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "gathered KV layer ", l, " of shape [", layer.k().size(0), ", ", layer.size(), ", ",
            layer.k().size(2), "] does not fit the model and prompt"));
      }
      const auto rearrange = Clock::now();
      const LayerKV on_device(layer.k().to(model_->device(), model_->dtype()),
                              layer.v().to(model_->device(), model_->dtype()),
                              layer.positions().to(model_->device(), at::kLong));
      out.cache.layers[static_cast<size_t>(l)] =
          rearranger.Rearrange(on_device, positions, positions);
      out.times.rearrange_ms += MillisSince(rearrange);
      return absl::OkStatus();
    };
    SEMSHARE_RETURN_IF_ERROR(
        RecomputeRearranged(embeddings, mapping, options, prepare_layer, &out));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("prefill failed: ", e.what_without_backtrace()));
  }
  return out;
}

void Engine::ApplyRetention(const ReuseOptions& options,
                            const std::vector<std::vector<uint8_t>>& protect,
                            PrefillOutcome* out) const {
  const auto start = Clock::now();
  const int64_t num_layers = model_->num_layers();
  const int64_t n = out->prompt_tokens;
  out->layer_budgets.assign(static_cast<size_t>(num_layers), n);
  if (options.retention.policy != RetentionPolicy::kNone) {
    for (int64_t l = 0; l < num_layers; ++l) {
      LayerKV& layer = out->cache.layers[static_cast<size_t>(l)];
      at::Tensor protected_mask;
      if (!protect.empty() && !protect[static_cast<size_t>(l)].empty()) {
        const auto& p = protect[static_cast<size_t>(l)];
        protected_mask = at::tensor(std::vector<int64_t>(p.begin(), p.end()), at::kLong)
                             .to(model_->device())
                             .to(at::kBool);
      }
      LayerAttentionStats& stats = out->stats[static_cast<size_t>(l)];
      const at::Tensor keep = SelectRetainedTokens(options.retention, l, num_layers, stats,
                                                   layer.positions(), protected_mask)
                                  .to(model_->device());
      KeepMerging(options.retention, keep, stats.window_mass, &layer);
      KeepStats(keep, &stats);
      out->layer_budgets[static_cast<size_t>(l)] = layer.size();
    }
  }
  out->kv_kept_share = static_cast<double>(out->cache.token_layers()) /
                       static_cast<double>(std::max<int64_t>(1, n * num_layers));
  out->times.retention_ms = MillisSince(start);
}

absl::Status Engine::ValidateSampling(int64_t prompt_tokens,
                                      const SamplingOptions& sampling) const {
  SEMSHARE_RETURN_IF_ERROR(sampling.Validate());
  return CheckFitsContext(model_->config(), prompt_tokens, sampling.max_tokens);
}

absl::Status Engine::ValidateTarget(const std::vector<int32_t>& target,
                                    const ReuseOptions& options) const {
  SEMSHARE_RETURN_IF_ERROR(options.Validate());
  const ModelConfig& c = model_->config();
  if (target.empty()) return absl::InvalidArgumentError("empty prompt");
  SEMSHARE_RETURN_IF_ERROR(CheckFitsContext(c, static_cast<int64_t>(target.size()), 0));
  for (int32_t id : target) {
    if (id < 0 || id >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " outside the vocabulary [0, ", c.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PrefillOutcome> Engine::Prefill(const std::vector<int32_t>& target,
                                               const Reference* reference,
                                               const ReuseOptions& options) const {
  return PrefillKeeping(target, reference, options, nullptr);
}

absl::StatusOr<PrefillOutcome> Engine::PrefillKeeping(const std::vector<int32_t>& target,
                                                      const Reference* reference,
                                                      const ReuseOptions& options,
                                                      KVCache* full_prefill_kv) const {
  SEMSHARE_RETURN_IF_ERROR(ValidateTarget(target, options));
  const ModelConfig& c = model_->config();
  if (reference != nullptr &&
      reference->kv.layers.size() != static_cast<size_t>(c.num_hidden_layers)) {
    return absl::InvalidArgumentError(absl::StrCat("reference KV has ", reference->kv.layers.size(),
                                                   " layers, the model ", c.num_hidden_layers));
  }

  PrefillOutcome out;
  out.prompt_tokens = static_cast<int64_t>(target.size());
  try {
    if (reference == nullptr || options.method == ReuseMethod::kFull) {
      SEMSHARE_RETURN_IF_ERROR(FullPrefill(target, options, &out));
      if (full_prefill_kv != nullptr) {
        // Retention and decode replace or grow the cache's tensors; the copy keeps them whole.
        *full_prefill_kv = out.cache.Clone();
      }
    } else if (options.method == ReuseMethod::kPrefix) {
      SEMSHARE_RETURN_IF_ERROR(PrefixPrefill(target, *reference, options, &out));
    } else {
      bool reuse = true;
      if (std::optional<std::string> reason = BypassReason(
              out.prompt_tokens, static_cast<int64_t>(reference->ids.size()), options)) {
        reuse = false;
        out.bypassed = true;
        out.bypass_reason = *std::move(reason);
      }
      bool hit = false;
      if (reuse) {
        SEMSHARE_ASSIGN_OR_RETURN(hit, SemSharePrefill(target, *reference, options, &out));
        if (hit) return out;  // retention already applied, protecting the recompute sets
      }
      const StageTimes match_times = out.times;
      SEMSHARE_RETURN_IF_ERROR(FullPrefill(target, options, &out));
      out.times.encode_ms = match_times.encode_ms;
      out.times.match_ms = match_times.match_ms;
    }
    ApplyRetention(options, {}, &out);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("prefill failed: ", e.what_without_backtrace()));
  }
  return out;
}

void Engine::EvictForDecode(const ReuseOptions& options, PrefillOutcome* prefill) const {
  if (options.retention.policy == RetentionPolicy::kNone || !options.retention.decode_eviction)
    return;
  for (size_t l = 0; l < prefill->cache.layers.size(); ++l) {
    LayerKV& layer = prefill->cache.layers[l];
    if (layer.size() <= prefill->layer_budgets[l]) continue;
    LayerAttentionStats& stats = prefill->stats[l];
    const int64_t victim =
        SelectEvictionVictim(options.retention, stats, layer.positions(), at::Tensor());
    if (victim < 0) continue;
    const at::Tensor all =
        at::arange(layer.size(), at::TensorOptions().dtype(at::kLong).device(model_->device()));
    const at::Tensor keep = all.masked_select(all != victim);
    layer.Keep(keep);
    KeepStats(keep, &stats);
  }
}

absl::StatusOr<GenerateResult> Engine::Generate(const std::vector<int32_t>& target,
                                                const Reference* reference,
                                                const ReuseOptions& options,
                                                const SamplingOptions& sampling) const {
  SEMSHARE_RETURN_IF_ERROR(ValidateSampling(static_cast<int64_t>(target.size()), sampling));
  const auto start = Clock::now();
  SEMSHARE_ASSIGN_OR_RETURN(PrefillOutcome prefill, Prefill(target, reference, options));
  return Decode(std::move(prefill), options, sampling, start);
}

absl::StatusOr<GenerateResult> Engine::GenerateFrom(PrefillOutcome prefill,
                                                    const ReuseOptions& options,
                                                    const SamplingOptions& sampling) const {
  SEMSHARE_RETURN_IF_ERROR(ValidateSampling(prefill.prompt_tokens, sampling));
  return Decode(std::move(prefill), options, sampling, Clock::now());
}

absl::StatusOr<std::pair<GenerateResult, Reference>> Engine::GenerateMiss(
    const std::vector<int32_t>& target, const ReuseOptions& options,
    const SamplingOptions& sampling) const {
  SEMSHARE_RETURN_IF_ERROR(ValidateSampling(static_cast<int64_t>(target.size()), sampling));
  const auto start = Clock::now();
  Reference reference;
  reference.ids = target;
  reference.codes_options = options.ecache;
  SEMSHARE_ASSIGN_OR_RETURN(PrefillOutcome prefill,
                            PrefillKeeping(target, nullptr, options, &reference.kv));
  SEMSHARE_ASSIGN_OR_RETURN(GenerateResult result,
                            Decode(std::move(prefill), options, sampling, start));
  SEMSHARE_ASSIGN_OR_RETURN(reference.codes,
                            EncodeCodes(target, options.ecache, &reference.sketch));
  return std::make_pair(std::move(result), std::move(reference));
}

absl::StatusOr<GenerateResult> Engine::GenerateGathered(const std::vector<int32_t>& target,
                                                        const TokenMapping& mapping,
                                                        KVCache gathered,
                                                        const ReuseOptions& options,
                                                        const SamplingOptions& sampling) const {
  SEMSHARE_RETURN_IF_ERROR(ValidateSampling(static_cast<int64_t>(target.size()), sampling));
  const auto start = Clock::now();
  SEMSHARE_ASSIGN_OR_RETURN(PrefillOutcome prefill,
                            PrefillGathered(target, mapping, std::move(gathered), options));
  return Decode(std::move(prefill), options, sampling, start);
}

absl::StatusOr<GenerateResult> Engine::GenerateGathered(const std::vector<int32_t>& target,
                                                        const TokenMapping& mapping,
                                                        GatheredLayerSource* layers,
                                                        const ReuseOptions& options,
                                                        const SamplingOptions& sampling) const {
  SEMSHARE_RETURN_IF_ERROR(ValidateSampling(static_cast<int64_t>(target.size()), sampling));
  const auto start = Clock::now();
  SEMSHARE_ASSIGN_OR_RETURN(PrefillOutcome prefill,
                            PrefillGathered(target, mapping, layers, options));
  return Decode(std::move(prefill), options, sampling, start);
}

absl::StatusOr<GenerateResult> Engine::Decode(PrefillOutcome prefill_outcome,
                                              const ReuseOptions& options,
                                              const SamplingOptions& sampling,
                                              std::chrono::steady_clock::time_point start) const {
  GenerateResult result;
  result.prefill = std::move(prefill_outcome);
  std::mt19937_64 rng(sampling.seed);
  PrefillOutcome& prefill = result.prefill;
  const int64_t n = prefill.prompt_tokens;
  try {
    if (sampling.max_tokens > 0) {
      const auto emit = [&](int32_t t) -> absl::Status {
        result.tokens.push_back(t);
        if (sampling.on_token && !sampling.on_token(t))
          return absl::CancelledError("the client went away");
        return absl::OkStatus();
      };
      int32_t token = SampleToken(prefill.logits, sampling, &rng);
      result.ttft_ms = MillisSince(start);
      const auto decode_start = Clock::now();
      SEMSHARE_RETURN_IF_ERROR(emit(token));
      auto stops = [&](int32_t t) {
        return std::find(sampling.stop_tokens.begin(), sampling.stop_tokens.end(), t) !=
               sampling.stop_tokens.end();
      };
      while (static_cast<int32_t>(result.tokens.size()) < sampling.max_tokens && !stops(token)) {
        const int64_t position = n + static_cast<int64_t>(result.tokens.size()) - 1;
        const at::Tensor logits =
            model_->DecodeStep(token, position, &prefill.cache, &prefill.stats);
        EvictForDecode(options, &prefill);
        token = SampleToken(logits, sampling, &rng);
        SEMSHARE_RETURN_IF_ERROR(emit(token));
      }
      prefill.times.decode_ms = MillisSince(decode_start);
    } else {
      result.ttft_ms = MillisSince(start);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("decode failed: ", e.what_without_backtrace()));
  }
  result.latency_ms = MillisSince(start);
  result.kv_bytes = prefill.cache.bytes();
  const int64_t length = n + std::max<int64_t>(0, static_cast<int64_t>(result.tokens.size()) - 1);
  result.kv_kept_share = static_cast<double>(prefill.cache.token_layers()) /
                         static_cast<double>(std::max<int64_t>(1, length * model_->num_layers()));
  return result;
}

absl::StatusOr<double> Engine::ContinuationNll(PrefillOutcome* prefill,
                                               const std::vector<int32_t>& continuation,
                                               const ReuseOptions& options,
                                               std::vector<int32_t>* top1) const {
  if (top1 != nullptr) top1->clear();
  if (continuation.empty()) return absl::InvalidArgumentError("empty continuation");
  SEMSHARE_RETURN_IF_ERROR(CheckFitsContext(model_->config(), prefill->prompt_tokens,
                                            static_cast<int64_t>(continuation.size())));
  double nll = 0;
  at::Tensor logits = prefill->logits;
  try {
    for (size_t t = 0; t < continuation.size(); ++t) {
      const int32_t token = continuation[t];
      if (token < 0 || token >= model_->config().vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("continuation token ", token, " outside the vocabulary"));
      }
      nll -= at::log_softmax(logits.to(at::kFloat), 0)[token].item<double>();
      if (top1 != nullptr) top1->push_back(static_cast<int32_t>(logits.argmax().item<int64_t>()));
      if (t + 1 == continuation.size()) break;
      logits = model_->DecodeStep(token, prefill->prompt_tokens + static_cast<int64_t>(t),
                                  &prefill->cache, &prefill->stats);
      EvictForDecode(options, prefill);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("scoring failed: ", e.what_without_backtrace()));
  }
  return nll / static_cast<double>(continuation.size());
}

}  // namespace semshare
