#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_SAMPLER_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_SAMPLER_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "absl/status/status.h"

namespace semshare {

struct SamplingOptions {
  int32_t max_tokens = 64;
  double temperature = 0.0;          // 0: greedy
  double top_p = 1.0;                // nucleus sampling when temperature > 0
  uint64_t seed = 0;                 // same seed, same logits: same tokens
  std::vector<int32_t> stop_tokens;  // generation ends after emitting one of these
  // Called with each token as soon as it is chosen (may be empty); returning false ends the
  // generation with CANCELLED (the client went away).
  std::function<bool(int32_t)> on_token;

  absl::Status Validate() const;
};

// Picks the next token from float32 logits [vocab]: argmax (lowest id on ties) when greedy,
// else temperature-scaled top-p sampling driven by `rng`.
int32_t SampleToken(const at::Tensor& logits, const SamplingOptions& options, std::mt19937_64* rng);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_SAMPLER_H_
