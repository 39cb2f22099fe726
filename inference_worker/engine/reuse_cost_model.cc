#include "inference_worker/engine/reuse_cost_model.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_format.h"
#include "inference_worker/engine/recompute.h"

namespace semshare {

ReusePrediction PredictReuseWork(const ModelConfig& c, const MeasuredSpeeds& speeds,
                                 int64_t target_tokens, int64_t reference_tokens,
                                 const ReuseOptions& options) {
  const double flops_per_second = std::max(1.0, speeds.flops_per_second);
  const double hamming_per_second = std::max(1.0, speeds.hamming_words_per_second);
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

ReusePrediction AddFixedCosts(ReusePrediction p, double full_fixed_ms, double reuse_fixed_ms,
                              bool gpu_cost_model) {
  p.full_fixed_ms = full_fixed_ms;
  p.reuse_fixed_ms = reuse_fixed_ms;
  p.full_ms = gpu_cost_model ? std::max(p.full_ms, full_fixed_ms) : p.full_ms + full_fixed_ms;
  p.reuse_ms += reuse_fixed_ms;
  return p;
}

std::optional<std::string> BypassDecision(const ReusePrediction& p) {
  if (p.reuse_ms < 0.9 * p.full_ms) return std::nullopt;
  std::string reason =
      absl::StrFormat("predicted reuse %.1f ms vs full prefill %.1f ms", p.reuse_ms, p.full_ms);
  if (p.full_fixed_ms > 0 || p.reuse_fixed_ms > 0) {
    absl::StrAppendFormat(&reason, " (fixed costs %.1f and %.1f ms)", p.reuse_fixed_ms,
                          p.full_fixed_ms);
  }
  return reason;
}

}  // namespace semshare
