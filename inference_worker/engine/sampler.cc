#include "inference_worker/engine/sampler.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>

namespace semshare {

absl::Status SamplingOptions::Validate() const {
  if (max_tokens < 0) return absl::InvalidArgumentError("max_tokens must be >= 0");
  if (!(temperature >= 0)) return absl::InvalidArgumentError("temperature must be >= 0");
  if (!(top_p > 0 && top_p <= 1)) return absl::InvalidArgumentError("top_p must be in (0, 1]");
  return absl::OkStatus();
}

int32_t SampleToken(const at::Tensor& logits, const SamplingOptions& options,
                    std::mt19937_64* rng) {
  const at::Tensor cpu = logits.to(at::kCPU, at::kFloat).contiguous();
  const float* values = cpu.data_ptr<float>();
  const int64_t vocab = cpu.numel();
  if (options.temperature <= 0) {
    return static_cast<int32_t>(std::max_element(values, values + vocab) - values);
  }
  const at::Tensor probs = at::softmax(cpu / options.temperature, 0).contiguous();
  const float* p = probs.data_ptr<float>();
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[a] > p[b]; });
  double mass = 0;
  size_t keep = 0;
  while (keep < order.size()) {
    mass += p[order[keep]];
    ++keep;
    if (mass >= options.top_p) break;
  }
  // Draw from the nucleus with our own uniform so the same seed replays on every platform.
  const double u = (static_cast<double>((*rng)() >> 11) * 0x1.0p-53) * mass;
  double running = 0;
  for (size_t i = 0; i < keep; ++i) {
    running += p[order[i]];
    if (u < running) return order[i];
  }
  return order[keep - 1];
}

}  // namespace semshare
