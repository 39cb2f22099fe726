#include "inference_worker/engine/rope.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

namespace semshare {
namespace {

// Llama 3's frequency-dependent scaling: long wavelengths are stretched by `factor`, short
// ones kept, and the band between interpolated smoothly.
float ScaleFrequency(double freq, const RopeScaling& s) {
  const double old_context = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / s.low_freq_factor;
  const double high_freq_wavelen = old_context / s.high_freq_factor;
  const double wavelen = 2.0 * M_PI / freq;
  if (wavelen < high_freq_wavelen) return static_cast<float>(freq);
  if (wavelen > low_freq_wavelen) return static_cast<float>(freq / s.factor);
  const double smooth =
      (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  return static_cast<float>((1.0 - smooth) * freq / s.factor + smooth * freq);
}

}  // namespace

Rope::Rope(int64_t dim, double theta, const std::optional<RopeScaling>& scaling) : dim_(dim) {
  const int64_t half = dim / 2;
  std::vector<float> freqs(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // Computed as HF does, in float32: 1 / theta^(2i/dim).
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    double freq = 1.0 / std::pow(static_cast<float>(theta), exponent);
    freq = static_cast<float>(freq);
    freqs[static_cast<size_t>(i)] =
        scaling ? ScaleFrequency(freq, *scaling) : static_cast<float>(freq);
  }
  inv_freq_ = at::tensor(freqs, at::kFloat);
}

at::Tensor Rope::Apply(const at::Tensor& x, const at::Tensor& positions) const {
  return Apply(x, MakeTable(positions.to(x.device())));
}

Rope::Table Rope::MakeTable(const at::Tensor& positions) const {
  const at::Tensor pos = positions.to(at::kFloat).unsqueeze(-1);                 // [N, 1]
  const at::Tensor freqs = pos * inv_freq_.to(positions.device()).unsqueeze(0);  // [N, dim/2]
  const at::Tensor angles = at::cat({freqs, freqs}, -1);                         // [N, dim]
  return Table{angles.cos(), angles.sin()};
}

Rope::Table Rope::Table::Select(const at::Tensor& rows) const {
  const at::Tensor r = rows.to(cos.device(), at::kLong);
  return Table{cos.index_select(0, r), sin.index_select(0, r)};
}

at::Tensor Rope::Apply(const at::Tensor& x, const Table& table) const {
  const at::Tensor cos = table.cos.to(x.device(), x.scalar_type());
  const at::Tensor sin = table.sin.to(x.device(), x.scalar_type());
  const int64_t half = dim_ / 2;
  const at::Tensor x1 = x.narrow(-1, 0, half);
  const at::Tensor x2 = x.narrow(-1, half, half);
  // x * cos + rotate_half(x) * sin with rotate_half(x) = [-x2, x1], in place on one output:
  // the textbook form without its four temporaries (addcmul may fuse a multiply-add, so the
  // result can differ from it in the last bit).
  at::Tensor out = x * cos;
  out.narrow(-1, 0, half).addcmul_(x2, sin.narrow(-1, 0, half), /*value=*/-1);
  out.narrow(-1, half, half).addcmul_(x1, sin.narrow(-1, half, half));
  return out;
}

}  // namespace semshare
