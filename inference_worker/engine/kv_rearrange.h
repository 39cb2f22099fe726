#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_KV_REARRANGE_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_KV_REARRANGE_H_

#include <ATen/core/Tensor.h>

#include "inference_worker/engine/kv_cache.h"
#include "inference_worker/engine/rope.h"

namespace semshare {

// Step 4 of the method for one layer: gathers the reference layer's KV into target order
// (target token i takes reference slot source[i]) and, when `rerotate_keys`, turns each key's
// RoPE from its reference position into target position i by rotating it by the difference.
// `source` and `target_positions` are int64 [N]. With identical prompts (source[i] == i) the
// result equals the reference bit for bit: a rotation by 0 is exact.
LayerKV RearrangeLayer(const LayerKV& reference, const at::Tensor& source,
                       const at::Tensor& target_positions, const Rope& rope, bool rerotate_keys);

// RearrangeLayer for layers that arrive one at a time (a FetchKV stream): layers with the same
// position shift share one cos/sin table, as in RearrangeKV.
class LayerRearranger {
 public:
  LayerRearranger(const Rope* rope, bool rerotate_keys)
      : rope_(rope), rerotate_keys_(rerotate_keys) {}
  LayerKV Rearrange(const LayerKV& reference, const at::Tensor& source,
                    const at::Tensor& target_positions);

 private:
  const Rope* rope_;
  bool rerotate_keys_;
  at::Tensor delta_;
  Rope::Table table_;
};

// Every layer of `reference` rearranged the same way.
KVCache RearrangeKV(const KVCache& reference, const at::Tensor& source,
                    const at::Tensor& target_positions, const Rope& rope, bool rerotate_keys);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_KV_REARRANGE_H_
