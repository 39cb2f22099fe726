#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_RETENTION_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_RETENTION_H_

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/engine/kv_cache.h"

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
  int64_t sink_tokens = 4;         // always kept: the first positions
  int64_t recent_window = 32;      // always kept: the last positions
  int64_t snapkv_pool_kernel = 7;  // SnapKV's max-pool width over window attention
  // pyramid: the deepest layer keeps at least budget_share / pyramid_beta (PyramidKV's beta);
  // 1 makes pyramid uniform. See RetentionShares for the formula.
  double pyramid_beta = 20.0;
  // When true, layers are also held at their prefill budget during decode: each new token
  // evicts the lowest-scoring old one (sinks, recent window and protected tokens stay).
  bool decode_eviction = false;
  // When true, the tokens a layer's prefill pruning evicts are merged into the kept ones
  // instead of dropped (KeepMerging); decode evictions always drop their token. Off by default:
  // it costs prefill time (README, "Fidelity").
  bool merge_evicted = false;
  // An evicted token merges only into a kept token whose key, in the same KV head, has at
  // least this cosine similarity with its own ...
  double merge_min_similarity = 0.3;
  // ... among the merge_window kept tokens nearest to it in position (0: all kept tokens, a
  // matmul over every evicted-kept pair: slow on long prompts).
  int64_t merge_window = 8;

  // Checks ranges (shares in (0, 1], gamma in (0, 1], non-negative windows, pool kernel >= 1,
  // pyramid_beta >= 1, merge_min_similarity in [-1, 1]). Every field is checked, whatever the
  // policy.
  absl::Status Validate() const;
};

// What one layer's attention said about its cached tokens, accumulated during prefill (and
// updated during decode). All tensors are float32 [num_tokens] on the cache's device, in
// the layer's cache order.
struct LayerAttentionStats {
  at::Tensor window_mass;       // sum over heads and the last observation-window queries
  at::Tensor accumulated_mass;  // sum over heads and every query computed so far (H2O)
  at::Tensor last_query_mass;   // sum over heads, the most recent query only (TOVA)

  // The three tensors, for code that treats them alike (growing, pruning, copying).
  std::array<at::Tensor*, 3> tensors() {
    return {&window_mass, &accumulated_mass, &last_query_mass};
  }
};

// The per-layer share of tokens a policy keeps after a prefill of `num_tokens` tokens in a
// model of `num_layers` layers (1.0 for kNone). Pure function of the options.
//   kExpDecay: min(1, max(r_min, r0 * gamma^l)).
//   kSnapKV, kH2O, kTova, kStreaming: budget_share (streaming keeps only sinks and the recent
//     window whatever its share).
//   kPyramid: with b = budget_share and half-spread s = min(b - b / pyramid_beta, 1 - b),
//     layer l of L keeps (b + s) - 2s * l / (L - 1): linear in depth from b + s (<= 1) at the
//     first layer down to b - s (>= b / pyramid_beta > 0) at the last, mean exactly b.
std::vector<double> RetentionShares(const RetentionOptions& options, int64_t num_layers);

// SnapKV's clustering: a 1-D max-pool of `mass` (float [num_tokens]) over neighbouring cache
// indices, stride 1, same length (window of `kernel` covering (kernel - 1) / 2 before and
// kernel / 2 after each index). NaN counts as -inf. Stays on mass's device.
at::Tensor SnapKVPool(const at::Tensor& mass, int64_t kernel);

// Chooses which tokens of one layer to keep after prefill. `positions` (int64 [num_tokens])
// are the tokens' positions in the prompt; `protected_mask` (bool [num_tokens], may be
// undefined) marks tokens that must stay (the recompute set). Sinks (smallest positions),
// the recent window (largest positions) and protected tokens are kept first; the rest of the
// layer's budget goes to the highest-scoring tokens. Returns sorted int64 indices into the
// layer's cache, never more than num_tokens and never fewer than the protected tokens.
// Details:
//  - budget = ceil(share * num_tokens), at least sink_tokens + recent_window, at most
//    num_tokens; the kept set is exactly the budget unless the forced set is larger.
//  - Scores: exp_decay window_mass; snapkv and pyramid SnapKVPool(window_mass); h2o
//    accumulated_mass; tova last_query_mass; streaming none (only forced tokens are kept).
//    Only the score tensor the policy uses need be defined. NaN scores rank lowest; ties go
//    to the lower cache index, so the result is deterministic on every device.
//  - The result lives on positions' device (indices ready for index_select on the cache).
//  - Preconditions (checked with TORCH_CHECK, a c10::Error like any ATen op, since a
//    violation is a caller bug, not bad input): 0 <= layer < num_layers, positions is 1-D,
//    protected_mask and the score tensor have num_tokens elements.
at::Tensor SelectRetainedTokens(const RetentionOptions& options, int64_t layer, int64_t num_layers,
                                const LayerAttentionStats& stats, const at::Tensor& positions,
                                const at::Tensor& protected_mask);

// During decode with decode_eviction: given a layer over its budget by one token, the index
// of the token to evict (lowest score, never a sink, the recent window or protected), or -1
// when every token is protected. Scores are those of SelectRetainedTokens; streaming, which
// has none, evicts the smallest position (the token leaving the recent window); kNone never
// evicts (-1). Ties go to the lower index. Same preconditions as SelectRetainedTokens.
int64_t SelectEvictionVictim(const RetentionOptions& options, const LayerAttentionStats& stats,
                             const at::Tensor& positions, const at::Tensor& protected_mask);

// Keeps the tokens at sorted `keep` (int64, on the layer's device) of `layer` and, with
// options.merge_evicted, folds each evicted token into a kept one instead of dropping it (as
// D2O and CaM merge KV): in every KV head, evicted token e joins the kept token m with the most
// similar key among its merge_window nearest kept tokens, if that cosine similarity is at least
// merge_min_similarity. With rho_e = min(1, window_mass[e] / window_mass[m]) (its attention
// relative to m's over the observation window; 1 when window_mass is undefined), m's value
// becomes (v_m + sum rho_e v_e) / (1 + sum rho_e) and its attention logits gain
// log(1 + sum rho_e) (LayerKV::bias): the group's attention mass and mean value, exact when the
// evicted tokens duplicate m. With window_mass, at most as many evicted tokens merge as are
// kept: those with the most window attention. The token count is that of a plain Keep.
// window_mass, when defined, is float [layer->size()] in cache order.
void KeepMerging(const RetentionOptions& options, const at::Tensor& keep,
                 const at::Tensor& window_mass, LayerKV* layer);

struct PrefillOutcome;

// Keeps a layer's attention stats in step with LayerKV::Keep(keep) on its cache.
void KeepStats(const at::Tensor& keep, LayerAttentionStats* stats);

// Step 6 after a prefill: every layer of out->cache keeps what SelectRetainedTokens chooses
// (merging evicted tokens when options.merge_evicted), `protect[l]` (may be empty; one byte per
// prompt token) marking layer l's recompute set. Sets layer_budgets, kv_kept_share and
// times.retention_ms; with kNone it keeps everything and only sets those.
void ApplyRetention(const RetentionOptions& options,
                    const std::vector<std::vector<uint8_t>>& protect, PrefillOutcome* out);

// During decode: a layer grown past its prefill budget evicts one token (decode_eviction).
void EvictForDecode(const RetentionOptions& options, PrefillOutcome* prefill);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_RETENTION_H_
