#include "inference_worker/engine/kv_rearrange.h"

#include <ATen/ATen.h>

namespace semshare {

namespace {

LayerKV RearrangeCached(const LayerKV& reference, const at::Tensor& src, const at::Tensor& positions,
                  const Rope& rope, bool rerotate_keys, const at::Tensor& cached_delta,
                  const Rope::Table& cached_table, at::Tensor* delta_out, Rope::Table* table_out) {
  at::Tensor k = reference.k().index_select(1, src);
  const at::Tensor v = reference.v().index_select(1, src);
  if (rerotate_keys) {
    const at::Tensor delta = positions - reference.positions().index_select(0, src);
    // Every layer of a reference usually has the same positions: reuse the cos/sin table.
    const bool same = cached_delta.defined() && at::equal(cached_delta, delta);
    const Rope::Table table = same ? cached_table : rope.MakeTable(delta);
    // RoPE math in float32 even for bf16 caches, then back: keeps re-rotation error at the
    // storage precision rather than compounding it.
    k = rope.Apply(k.to(at::kFloat), table).to(reference.k().scalar_type());
    if (delta_out != nullptr) *delta_out = delta;
    if (table_out != nullptr) *table_out = table;
  }
  return LayerKV(k, v, positions);
}

}  // namespace

LayerKV RearrangeLayer(const LayerKV& reference, const at::Tensor& source,
                       const at::Tensor& target_positions, const Rope& rope, bool rerotate_keys) {
  const at::Tensor src = source.to(reference.k().device(), at::kLong);
  return RearrangeCached(reference, src, target_positions.to(src.device(), at::kLong), rope, rerotate_keys,
                   at::Tensor(), Rope::Table{}, nullptr, nullptr);
}

LayerKV LayerRearranger::Rearrange(const LayerKV& reference, const at::Tensor& source,
                                   const at::Tensor& target_positions) {
  const at::Tensor src = source.to(reference.k().device(), at::kLong);
  return RearrangeCached(reference, src, target_positions.to(src.device(), at::kLong), *rope_, rerotate_keys_,
                             delta_, table_, &delta_, &table_);
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
