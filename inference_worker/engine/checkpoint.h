#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_CHECKPOINT_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "inference_worker/engine/model_config.h"
#include "inference_worker/engine/safetensors.h"

namespace semshare {

// A validated Hugging Face checkpoint: config plus weights under their HF names
// ("model.embed_tokens.weight", "model.layers.{i}.self_attn.q_proj.weight", ...).
struct Checkpoint {
  std::string dir;
  ModelConfig config;
  TensorMap tensors;        // CPU, stored dtype
  std::string fingerprint;  // see ComputeModelFingerprint
};

// The tensor names and shapes a config requires (biases only when attention_bias,
// lm_head only when embeddings are not tied).
std::map<std::string, std::vector<int64_t>> ExpectedTensorShapes(const ModelConfig& config);

// Loads config.json and the weights and checks every expected tensor is present with the
// right shape and a floating dtype. Errors name the directory and the offending tensor.
absl::StatusOr<Checkpoint> LoadCheckpoint(const std::string& dir);

// Identifies the weights a KV cache was computed with: a stable hash of the config, the
// tensor names/shapes/dtypes and a strided sample of every tensor's bytes. 16 hex digits.
std::string ComputeModelFingerprint(const ModelConfig& config, const TensorMap& tensors);

// Shapes of the model presets for speed measurements ("tiny", "bench-100m",
// "llama-3.2-1b", "llama-3-8b"). An unknown name is InvalidArgument, listing the known ones.
absl::StatusOr<ModelConfig> PresetConfig(const std::string& preset);

// Writes a random-weight checkpoint of that config (config.json + model.safetensors in
// `dtype`: "bfloat16", "float16" or "float32"), deterministic in `seed`.
absl::Status WriteRandomCheckpoint(const ModelConfig& config, uint64_t seed,
                                   const std::string& dtype, const std::string& out_dir);

// What WriteRandomCheckpointWithSummary wrote; the fingerprint is the one LoadCheckpoint
// will compute, obtained without reading the weights back.
struct CheckpointSummary {
  int64_t parameters = 0;
  int64_t bytes = 0;  // size of model.safetensors
  std::string fingerprint;
};

// WriteRandomCheckpoint, reporting what it wrote. Weights are made and written one tensor
// at a time, so memory holds at most one tensor (1 GB for llama-3-8b's embeddings in bf16).
absl::StatusOr<CheckpointSummary> WriteRandomCheckpointWithSummary(const ModelConfig& config,
                                                                   uint64_t seed,
                                                                   const std::string& dtype,
                                                                   const std::string& out_dir);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_CHECKPOINT_H_
