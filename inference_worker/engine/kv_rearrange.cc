#include "inference_worker/engine/kv_rearrange.h"

#include <ATen/ATen.h>

namespace semshare {

LayerKV LayerRearranger::Rearrange(const LayerKV& reference, const at::Tensor& source,
                                   const at::Tensor& target_positions) {
  const at::Tensor src = source.to(reference.k().device(), at::kLong);
  const at::Tensor positions = target_positions.to(src.device(), at::kLong);
  at::Tensor k = reference.k().index_select(1, src);
  const at::Tensor v = reference.v().index_select(1, src);
  if (rerotate_keys_) {
    const at::Tensor delta = positions - reference.positions().index_select(0, src);
    // Every layer of a reference usually has the same positions: reuse the cos/sin table.
    if (!delta_.defined() || !at::equal(delta_, delta)) {
      table_ = rope_->MakeTable(delta);
      delta_ = delta;
    }
    // RoPE math in float32 even for bf16 caches, then back: keeps re-rotation error at the
    // storage precision rather than compounding it.
    k = rope_->Apply(k.to(at::kFloat), table_).to(reference.k().scalar_type());
  }
  return LayerKV(k, v, positions);
}

LayerKV RearrangeLayer(const LayerKV& reference, const at::Tensor& source,
                       const at::Tensor& target_positions, const Rope& rope, bool rerotate_keys) {
  return LayerRearranger(&rope, rerotate_keys).Rearrange(reference, source, target_positions);
}

KVCache RearrangeKV(const KVCache& reference, const at::Tensor& source,
                    const at::Tensor& target_positions, const Rope& rope, bool rerotate_keys) {
  KVCache out;
  out.layers.reserve(reference.layers.size());
  LayerRearranger rearranger(&rope, rerotate_keys);
  for (const LayerKV& layer : reference.layers) {
    out.layers.push_back(rearranger.Rearrange(layer, source, target_positions));
  }
  return out;
}

}  // namespace semshare
