#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_SELECTIVE_RECOMPUTE_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_SELECTIVE_RECOMPUTE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "common/token_mapping.h"
#include "inference_worker/engine/model.h"
#include "inference_worker/engine/prefill_outcome.h"
#include "inference_worker/engine/reuse_options.h"

namespace semshare {

// Step 5 of the method over a cache already rearranged into target order, one layer at a time,
// so a scheduler can run it in pieces between decode steps. Layer 0 recomputes every token;
// deviation between fresh and reused KV then ranks which tokens stay in the (only shrinking)
// recompute set of the next layer; unmatched tokens and the last tokens always stay. A layer
// writes the fresh keys/values of its whole set but runs queries, attention and MLP only for the
// tokens that stay in the next layer's set (and the observation window's queries). Finish
// computes the first output token's logits and applies retention, protecting each layer's set.
// Methods may throw c10::Error (ATen); the engine's public entry points catch it.
class SelectiveRecompute {
 public:
  // `out->cache.layers[l]` must hold layer l's rearranged KV (all n target rows) by the time
  // StepLayer recomputes layer l. `model` and `out` must outlive this.
  SelectiveRecompute(const Model* model, at::Tensor embeddings, const TokenMapping& mapping,
                     const ReuseOptions& options, PrefillOutcome* out);

  bool done() const { return layer_ == model_->num_layers(); }
  int64_t next_layer() const { return layer_; }
  // Recomputes layer next_layer().
  void StepLayer();
  // After the last layer: logits, recompute and compute shares, prefill time, retention.
  void Finish();

 private:
  const Model* model_;
  ReuseOptions options_;
  PrefillOutcome* out_;
  int64_t n_;
  int64_t window_start_;
  bool stats_from_every_query_;
  std::vector<double> shares_;
  std::vector<uint8_t> must_keep_;
  std::vector<int64_t> current_;                  // this layer's recompute set, ascending
  std::vector<std::vector<uint8_t>> recomputed_;  // per layer, one byte per target token
  at::Tensor hidden_;                             // inputs of current_ to the next layer
  int64_t layer_ = 0;
  int64_t recomputed_after_layer0_ = 0;
  int64_t computed_ = 0;
  double compute_ms_ = 0;
};

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_SELECTIVE_RECOMPUTE_H_
