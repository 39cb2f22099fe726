// The measuring behind the bypass (reuse_cost_model.h is the arithmetic): the device's matmul
// and code-scan speeds, once on first use, and, where EngineOptions asks, the fixed costs of a
// full prefill and of a hit and a prefill-calibrated speed.

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <new>
#include <random>

#include "common/clock.h"
#include "common/status_macros.h"
#include "inference_worker/engine/engine.h"

namespace semshare {
namespace {

// Waits for queued device work so timings mean something on CUDA.
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

// A projection-sized matmul (the best of three after a warm-up) and one code scan. On a GPU
// the matmul takes 4,096 rows: with 256 it ran in microseconds, as long as its launch and sync,
// and the measured speed varied 2x from one machine to the next (H100, llama-3.2-1b).
MeasuredSpeeds MeasureSpeeds(const Model& model, const ReuseOptions& options) {
  const ModelConfig& c = model.config();
  MeasuredSpeeds speeds;
  const auto options_f = at::TensorOptions().dtype(model.dtype()).device(model.device());
  const int64_t rows = model.device().is_cuda() ? 4096 : 256;
  const at::Tensor a = at::randn({rows, c.hidden_size}, options_f);
  const at::Tensor b = at::randn({c.hidden_size, 4 * c.hidden_size}, options_f);
  // Waits on one element of the product: summing all of it would be timed too.
  const auto product = [&] { Sync(at::matmul(a, b).view(-1).narrow(0, 0, 1)); };
  product();
  double seconds = std::numeric_limits<double>::infinity();
  for (int run = 0; run < 3; ++run) {
    const auto t0 = SteadyClock::now();
    product();
    seconds = std::min(seconds, std::max(1e-6, MillisSince(t0) / 1e3));
  }
  speeds.flops_per_second = 2.0 * static_cast<double>(rows) * static_cast<double>(c.hidden_size) *
                            4.0 * static_cast<double>(c.hidden_size) / seconds;

  TokenCodes codes;
  codes.nbits = options.ecache.nbits;
  std::mt19937_64 rng(1);
  codes.words.resize(512 * static_cast<size_t>(codes.words_per_code()));
  for (uint64_t& w : codes.words) w = rng();
  const auto t1 = SteadyClock::now();
  (void)MapTokens(codes, codes, MappingOptions{});
  const double scan_seconds = std::max(1e-6, MillisSince(t1) / 1e3);
  speeds.hamming_words_per_second = 512.0 * 512.0 * codes.words_per_code() / scan_seconds;
  return speeds;
}

}  // namespace

MeasuredSpeeds Engine::Speeds(const ReuseOptions& options) const {
  absl::MutexLock lock(&mutex_);
  if (speeds_.flops_per_second == 0) {
    try {
      speeds_ = MeasureSpeeds(*model_, options);
    } catch (const c10::Error&) {
      // Leaves the speeds unmeasured: the prediction then counts at a nominal speed.
      speeds_ = MeasuredSpeeds{1e9, 1e9};
    } catch (const std::bad_alloc&) {
      speeds_ = MeasuredSpeeds{1e9, 1e9};
    }
  }
  return speeds_;
}

absl::StatusOr<double> Engine::BestPrefillMs(const std::vector<int32_t>& target,
                                             const Reference* reference, ReuseOptions options,
                                             int timed_runs) const {
  options.bypass = false;
  options.similarity_threshold = 0;
  double best = std::numeric_limits<double>::infinity();
  for (int run = 0; run <= timed_runs; ++run) {
    const auto start = SteadyClock::now();
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
  const ReusePrediction work = PredictReuseWork(c, Speeds(options), n, n, options);
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
  // The work is counted at the matmul's speed; scale it so that this prefill is predicted as
  // measured.
  const double predicted = PredictReuseWork(c, Speeds(options), n, n, options).full_work_ms;
  absl::MutexLock lock(&mutex_);
  speeds_.flops_per_second *= predicted / std::max(1e-3, measured);
  return absl::OkStatus();
}

ReusePrediction Engine::Predict(int64_t target_tokens, int64_t reference_tokens,
                                const ReuseOptions& options) const {
  const ReusePrediction work =
      PredictReuseWork(model_->config(), Speeds(options), target_tokens, reference_tokens, options);
  if (!measure_fixed_costs_) return work;
  std::pair<double, double> fixed;
  {
    absl::MutexLock lock(&fixed_costs_mutex_);
    if (!fixed_costs_ms_.has_value()) {
      // A failed measurement leaves the prediction to counted work rather than fail requests.
      fixed_costs_ms_ = MeasureFixedCosts(options).value_or(std::make_pair(0.0, 0.0));
    }
    fixed = *fixed_costs_ms_;
  }
  // Counted again after the measurement: on a GPU it calibrates the speed.
  return AddFixedCosts(
      PredictReuseWork(model_->config(), Speeds(options), target_tokens, reference_tokens, options),
      fixed.first, fixed.second, gpu_cost_model_);
}

std::optional<std::string> Engine::BypassReason(int64_t target_tokens, int64_t reference_tokens,
                                                const ReuseOptions& options) const {
  if (!options.bypass) return std::nullopt;
  return BypassDecision(Predict(target_tokens, reference_tokens, options));
}

}  // namespace semshare
