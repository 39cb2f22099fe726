#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_RETENTION_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_RETENTION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace semshare {

// Which cached tokens each layer keeps after prefill (and, optionally, during decode).
enum class RetentionPolicy {
  kNone,       // keep everything
  kExpDecay,   // SemShareKV: layer l keeps max(r_min, r_0 * gamma^l), chosen by window attention
  kSnapKV,     // uniform budget, window attention pooled over neighbours
  kH2O,        // uniform budget, heavy hitters by attention accumulated over all queries
  kStreaming,  // attention sinks + recent window only
  kPyramid,    // PyramidKV: budgets falling linearly with depth, SnapKV-style selection
  kTova,       // uniform budget, by the last query's attention
};

absl::StatusOr<RetentionPolicy> ParseRetentionPolicy(const std::string& name);
std::string RetentionPolicyName(RetentionPolicy policy);

struct RetentionOptions {
  RetentionPolicy policy = RetentionPolicy::kNone;
  // exp_decay: share kept by layer l is max(r_min, r0 * gamma^l).
  double r0 = 1.0;
  double gamma = 0.75;
  double r_min = 0.1;
  // Uniform policies (snapkv, h2o, tova, streaming) keep this share of every layer; pyramid
  // keeps this share on average over the layers.
  double budget_share = 0.55;
  int64_t sink_tokens = 4;        // always kept: the first positions
  int64_t recent_window = 32;     // always kept: the last positions
  int64_t snapkv_pool_kernel = 7; // SnapKV's max-pool width over window attention
  // When true, layers are also held at their prefill budget during decode: each new token
  // evicts the lowest-scoring old one (sinks, recent window and protected tokens stay).
  bool decode_eviction = false;

  // Checks ranges (shares in (0, 1], gamma in (0, 1], non-negative windows).
  absl::Status Validate() const;
};

// What one layer's attention said about its cached tokens, accumulated during prefill (and
// updated during decode). All tensors are float32 [num_tokens] on the cache's device, in
// the layer's cache order.
struct LayerAttentionStats {
  at::Tensor window_mass;       // sum over heads and the last observation-window queries
  at::Tensor accumulated_mass;  // sum over heads and every query computed so far (H2O)
  at::Tensor last_query_mass;   // sum over heads, the most recent query only (TOVA)
};

// The per-layer share of tokens a policy keeps after a prefill of `num_tokens` tokens in a
// model of `num_layers` layers (1.0 for kNone). Pure function of the options.
std::vector<double> RetentionShares(const RetentionOptions& options, int64_t num_layers);

// Chooses which tokens of one layer to keep after prefill. `positions` (int64 [num_tokens])
// are the tokens' positions in the prompt; `protected_mask` (bool [num_tokens], may be
// undefined) marks tokens that must stay (the recompute set). Sinks (smallest positions),
// the recent window (largest positions) and protected tokens are kept first; the rest of the
// layer's budget goes to the highest-scoring tokens. Returns sorted int64 indices into the
// layer's cache, never more than num_tokens and never fewer than the protected tokens.
at::Tensor SelectRetainedTokens(const RetentionOptions& options, int64_t layer,
                                int64_t num_layers, const LayerAttentionStats& stats,
                                const at::Tensor& positions, const at::Tensor& protected_mask);

// During decode with decode_eviction: given a layer over its budget by one token, the index
// of the token to evict (lowest score, never a sink, the recent window or protected), or -1
// when every token is protected.
int64_t SelectEvictionVictim(const RetentionOptions& options, const LayerAttentionStats& stats,
                             const at::Tensor& positions, const at::Tensor& protected_mask);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_RETENTION_H_
