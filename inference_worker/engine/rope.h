#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_ROPE_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_ROPE_H_

#include <ATen/core/Tensor.h>

#include <optional>

#include "inference_worker/engine/model_config.h"

namespace semshare {

// Rotary position embedding in the rotate-half layout of Hugging Face Llama models. Rotations
// compose additively, so a key rotated for position j is moved to position i by rotating it
// again by (i - j): this is what key re-rotation in KV rearrangement relies on.
class Rope {
 public:
  // `dim` is the rotated width (head_dim for attention, hidden_size for the E-cache).
  Rope(int64_t dim, double theta, const std::optional<RopeScaling>& scaling);

  // Rotates x [..., N, dim] by angles positions[N] * inv_freq. `positions` may be fractional
  // (the E-cache divides positions) or negative (re-rotation by a delta); any dtype/device.
  at::Tensor Apply(const at::Tensor& x, const at::Tensor& positions) const;

  // cos and sin of positions[N] * inv_freq over the full width, float32 [N, dim] on the
  // positions' device: compute once, apply to many tensors (every layer's keys, queries).
  struct Table {
    at::Tensor cos;
    at::Tensor sin;
    Table Select(const at::Tensor& rows) const;  // the rows of a subset of the positions
  };
  Table MakeTable(const at::Tensor& positions) const;
  at::Tensor Apply(const at::Tensor& x, const Table& table) const;

  int64_t dim() const { return dim_; }
  const at::Tensor& inv_freq() const { return inv_freq_; }  // float32 [dim / 2], CPU

 private:
  int64_t dim_;
  at::Tensor inv_freq_;
};

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_ROPE_H_
