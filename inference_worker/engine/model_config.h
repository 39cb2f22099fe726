#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_MODEL_CONFIG_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace semshare {

// Llama-3 style RoPE frequency scaling ("rope_type": "llama3").
struct RopeScaling {
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// The fields of a Hugging Face config.json that the engine uses, for model types llama,
// mistral and qwen2 (decoder-only, RMSNorm, SwiGLU, RoPE, grouped-query attention).
struct ModelConfig {
  std::string model_type;  // "llama", "mistral" or "qwen2"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_attention_heads when absent
  int64_t intermediate_size = 0;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v projections carry a bias (always true for qwen2)
  int64_t max_position_embeddings = 2048;
  // 0: none. Otherwise a query at position i sees only keys at positions > i - sliding_window
  // (Mistral; Qwen2 with use_sliding_window), in layers >= sliding_window_first_layer.
  int64_t sliding_window = 0;
  int64_t sliding_window_first_layer = 0;  // qwen2: max_window_layers; mistral: 0
  int64_t bos_token_id = -1;               // -1: none
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype = "float32";

  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  int64_t q_dim() const { return num_attention_heads * head_dim; }

  // Parses and validates; anything unsupported is InvalidArgument naming the field.
  static absl::StatusOr<ModelConfig> FromJson(const Json& json);
  // The config.json form (round-trips through FromJson).
  Json ToJson() const;
};

// Reads DIR/config.json.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir);

// Whether a request fits the model's context of max_position_embeddings tokens: the prompt
// plus up to `max_new_tokens` generated ones, counted as vLLM counts them. InvalidArgument
// naming the figures, with error code kContextLengthExceeded (common/error_code.h), when not:
// positions past the context are beyond what the model was trained on, and serving them would
// give silently worse text.
absl::Status CheckFitsContext(const ModelConfig& config, int64_t prompt_tokens,
                              int64_t max_new_tokens);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_MODEL_CONFIG_H_
