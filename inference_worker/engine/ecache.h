#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_ECACHE_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_ECACHE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/token_mapping.h"
#include "inference_worker/engine/model_config.h"
#include "inference_worker/engine/rope.h"

namespace semshare {

struct ECacheOptions {
  // Rotate embeddings with RoPE before hashing (the paper's fix for attention sinks); off is
  // an ablation.
  bool use_rope = true;
  // E-cache positions are prompt positions divided by this, so near shifts stay close and far
  // repeats stay apart (DESIGN.md, calibration table).
  double position_divisor = 128.0;
  int32_t nbits = 256;
  // One fixed seed cluster-wide so every node computes the same codes.
  uint64_t seed = 0x5e3a5e3a2025ULL;

  absl::Status Validate() const;
};

// Steps 1-2 of the method: the E-cache (input embeddings rotated with RoPE over the full
// embedding width) and token LSH codes (a fixed random rotation, then sign bits, as FAISS
// IndexLSH with rotate_data). Deterministic across machines: the rotation is generated from
// the seed with our own RNG and orthonormalised in double precision.
class TokenEncoder {
 public:
  // The projection is drawn on the CPU (the same bits everywhere: codes must agree
  // cluster-wide) and kept on `device`, where the embeddings it projects live.
  static absl::StatusOr<TokenEncoder> Create(const ModelConfig& config,
                                             const ECacheOptions& options,
                                             const at::Device& device = at::kCPU);

  // Rotated embeddings, float32 [N, hidden] on the embeddings' device, for tokens at prompt
  // positions first_position .. first_position + N - 1.
  at::Tensor RotatedEmbeddings(const at::Tensor& embeddings, int64_t first_position = 0) const;

  // Codes of rotated embeddings [N, hidden].
  TokenCodes Encode(const at::Tensor& rotated) const;

  // A prompt-level sketch for candidate retrieval: the L2-normalised mean rotated embedding,
  // float32 [hidden] on the CPU.
  at::Tensor Sketch(const at::Tensor& rotated) const;

  const ECacheOptions& options() const { return options_; }
  int64_t projection_bytes() const { return static_cast<int64_t>(projection_.nbytes()); }

 private:
  TokenEncoder(ECacheOptions options, Rope rope, at::Tensor projection)
      : options_(options), rope_(std::move(rope)), projection_(std::move(projection)) {}

  ECacheOptions options_;
  Rope rope_;
  at::Tensor projection_;  // float32 [hidden, nbits], on the device given to Create
};

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_ECACHE_H_
