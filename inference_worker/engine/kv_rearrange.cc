#include "inference_worker/engine/kv_rearrange.h"

#include <ATen/ATen.h>

namespace semshare {

LayerKV RearrangeLayer(const LayerKV& reference, const at::Tensor& source,
                       const at::Tensor& target_positions, const Rope& rope, bool rerotate_keys) {
  const at::Tensor src = source.to(reference.k().device(), at::kLong);
  at::Tensor k = reference.k().index_select(1, src);
  const at::Tensor v = reference.v().index_select(1, src);
  const at::Tensor positions = target_positions.to(src.device(), at::kLong);
  if (rerotate_keys) {
    const at::Tensor delta = positions - reference.positions().index_select(0, src);
    // RoPE math in float32 even for bf16 caches, then back: keeps re-rotation error at the
    // storage precision rather than compounding it.
    k = rope.Apply(k.to(at::kFloat), delta).to(reference.k().scalar_type());
  }
  return LayerKV(k, v, positions);
}

KVCache RearrangeKV(const KVCache& reference, const at::Tensor& source,
                    const at::Tensor& target_positions, const Rope& rope, bool rerotate_keys) {
  KVCache out;
  out.layers.reserve(reference.layers.size());
  for (const LayerKV& layer : reference.layers) {
    out.layers.push_back(RearrangeLayer(layer, source, target_positions, rope, rerotate_keys));
  }
  return out;
}

}  // namespace semshare
