#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_RECOMPUTE_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_RECOMPUTE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace semshare {

// Step 5 of the method: which tokens each layer recomputes.
struct RecomputeOptions {
  // Share of tokens recomputed in layer 1 (the paper's 40% high-deviation tokens).
  double hd_share = 0.4;
  // Later layers recompute hd_share * decay^(l - 1), never less than min_share: deeper layers
  // attend to fewer tokens, and the set may only shrink with depth.
  double decay = 0.6;
  double min_share = 0.05;
  // The last tokens of the prompt are always recomputed, so the first output token's logits
  // and the retention window's attention are computed, not reused.
  int64_t last_tokens = 16;

  absl::Status Validate() const;
};

// Per-layer recompute shares for a model of `num_layers` layers: 1.0 for layer 0 (its input
// is the exact embedding), then the decaying schedule. Non-increasing.
std::vector<double> RecomputeShares(const RecomputeOptions& options, int64_t num_layers);

// Chooses the next layer's recompute set from the current one. `current` holds token indices
// (ascending), `deviation[k]` the deviation of current[k] between its fresh and reused KV,
// `must_keep[k]` whether current[k] must stay (unmatched, last tokens). Keeps every must-keep
// token, then the highest-deviation others up to `target_count` (ties: lower index). Never
// returns more than `current`. The result is ascending.
std::vector<int64_t> ShrinkRecomputeSet(const std::vector<int64_t>& current,
                                        const std::vector<float>& deviation,
                                        const std::vector<uint8_t>& must_keep,
                                        int64_t target_count);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_RECOMPUTE_H_
