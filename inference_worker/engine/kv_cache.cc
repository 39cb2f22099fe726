#include "inference_worker/engine/kv_cache.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace semshare {

LayerKV::LayerKV(const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions)
    : k_(k.contiguous()),
      v_(v.contiguous()),
      positions_(positions.to(k.device(), at::kLong).contiguous()),
      size_(k.size(1)) {}

LayerKV LayerKV::Empty(int64_t kv_heads, int64_t head_dim, int64_t capacity, at::ScalarType dtype,
                       at::Device device) {
  const auto options = at::TensorOptions().dtype(dtype).device(device);
  LayerKV layer(at::empty({kv_heads, capacity, head_dim}, options),
                at::empty({kv_heads, capacity, head_dim}, options),
                at::empty({capacity}, options.dtype(at::kLong)));
  layer.size_ = 0;
  return layer;
}

at::Tensor LayerKV::k() const { return k_.narrow(1, 0, size_); }
at::Tensor LayerKV::v() const { return v_.narrow(1, 0, size_); }
at::Tensor LayerKV::positions() const { return positions_.narrow(0, 0, size_); }
at::Tensor LayerKV::bias() const {
  return bias_.defined() ? bias_.narrow(1, 0, size_) : at::Tensor();
}
void LayerKV::SetBias(const at::Tensor& bias) {
  if (!bias.defined()) {
    bias_ = at::Tensor();
    return;
  }
  bias_ = at::zeros({k_.size(0), k_.size(1)}, k_.options().dtype(at::kFloat));
  bias_.narrow(1, 0, size_).copy_(bias);
}

void LayerKV::Reserve(int64_t capacity) {
  const int64_t current = k_.defined() ? k_.size(1) : 0;
  if (capacity <= current) return;
  Reallocate(std::max(capacity, current * 2));
}

void LayerKV::Reallocate(int64_t capacity) {
  at::Tensor k = at::empty({k_.size(0), capacity, k_.size(2)}, k_.options());
  at::Tensor v = at::empty({v_.size(0), capacity, v_.size(2)}, v_.options());
  at::Tensor positions = at::empty({capacity}, positions_.options());
  k.narrow(1, 0, size_).copy_(k_.narrow(1, 0, size_));
  v.narrow(1, 0, size_).copy_(v_.narrow(1, 0, size_));
  positions.narrow(0, 0, size_).copy_(positions_.narrow(0, 0, size_));
  if (bias_.defined()) {
    at::Tensor bias = at::zeros({k_.size(0), capacity}, bias_.options());
    bias.narrow(1, 0, size_).copy_(bias_.narrow(1, 0, size_));
    bias_ = bias;
  }
  k_ = k;
  v_ = v;
  positions_ = positions;
}

void LayerKV::Append(const at::Tensor& k, const at::Tensor& v, const at::Tensor& positions) {
  const int64_t n = k.size(1);
  Reserve(size_ + n);
  k_.narrow(1, size_, n).copy_(k);
  v_.narrow(1, size_, n).copy_(v);
  positions_.narrow(0, size_, n).copy_(positions);
  if (bias_.defined()) bias_.narrow(1, size_, n).zero_();
  size_ += n;
}

void LayerKV::Overwrite(const at::Tensor& index, const at::Tensor& k, const at::Tensor& v,
                        const at::Tensor& positions) {
  const at::Tensor idx = index.to(k_.device(), at::kLong);
  k_.index_copy_(1, idx, k.to(k_.scalar_type()));
  v_.index_copy_(1, idx, v.to(v_.scalar_type()));
  positions_.index_copy_(0, idx, positions.to(positions_.device(), at::kLong));
  if (bias_.defined()) bias_.index_fill_(1, idx, 0);
}

void LayerKV::Keep(const at::Tensor& index) {
  const at::Tensor idx = index.to(k_.device(), at::kLong);
  k_ = k().index_select(1, idx).contiguous();
  v_ = v().index_select(1, idx).contiguous();
  positions_ = positions().index_select(0, idx).contiguous();
  if (bias_.defined()) bias_ = bias().index_select(1, idx).contiguous();
  size_ = idx.size(0);
}

void LayerKV::ReserveExtra(int64_t tokens) {
  if (k_.defined() && size_ + tokens > k_.size(1)) Reallocate(size_ + tokens);
}

void LayerKV::Resize(int64_t size) {
  Reserve(size);
  if (bias_.defined() && size > size_) bias_.narrow(1, size_, size - size_).zero_();
  size_ = size;
}

int64_t LayerKV::bytes() const {
  if (!k_.defined()) return 0;
  return 2 * size_ * k_.size(0) * k_.size(2) * static_cast<int64_t>(k_.element_size());
}

int64_t KVCache::bytes() const {
  int64_t total = 0;
  for (const LayerKV& layer : layers) total += layer.bytes();
  return total;
}

int64_t KVCache::token_layers() const {
  int64_t total = 0;
  for (const LayerKV& layer : layers) total += layer.size();
  return total;
}

KVCache KVCache::Clone() const {
  KVCache copy;
  copy.layers.reserve(layers.size());
  for (const LayerKV& layer : layers) {
    copy.layers.emplace_back(layer.k().clone(), layer.v().clone(), layer.positions().clone());
    if (layer.bias().defined()) copy.layers.back().SetBias(layer.bias());
  }
  return copy;
}

}  // namespace semshare
