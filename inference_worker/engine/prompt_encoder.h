#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_PROMPT_ENCODER_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_PROMPT_ENCODER_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/token_mapping.h"
#include "inference_worker/engine/ecache.h"
#include "inference_worker/engine/model_config.h"
#include "inference_worker/engine/tokenizer.h"

// The router's view of a prompt (DESIGN.md, "The cluster"): token ids, E-cache codes and
// sketch, computed from the tokenizer and the embedding matrix alone. The layers are never
// read, so a router holds a few percent of the model.
namespace semshare {

struct PromptEncoderOptions {
  // The workers' compute dtype (ModelOptions::dtype, resolved for `worker_device`): the
  // embedding rows are rounded to it as a worker's are, so the codes agree with its engine.
  std::string dtype = "auto";
  std::string worker_device = "cpu";
  ECacheOptions ecache;
};

struct EncodedPrompt {
  std::vector<int32_t> token_ids;
  TokenCodes codes;           // one code per token, as Engine::EncodeCodes
  std::vector<float> sketch;  // L2-normalised mean rotated embedding, [hidden_size]
};

// Thread-safe after loading. Codes equal Engine::EncodeCodes bit for bit when the engine runs
// on the CPU in the same dtype; on CUDA the RoPE arithmetic may round differently.
class PromptEncoder {
 public:
  // Reads DIR/config.json, the tokenizer (optional, as for Model::Load) and the tensor
  // model.embed_tokens.weight only. Errors name the directory and what is wrong.
  static absl::StatusOr<std::unique_ptr<PromptEncoder>> Load(const std::string& dir,
                                                             const PromptEncoderOptions& options);

  // FailedPrecondition when the checkpoint has no tokenizer.
  absl::StatusOr<std::vector<int32_t>> Tokenize(absl::string_view text, bool add_bos) const;

  // Tokenizes (with BOS, as the engine tools do) and encodes.
  absl::StatusOr<EncodedPrompt> Encode(absl::string_view text) const;

  // InvalidArgument for an empty prompt or an id outside the vocabulary.
  absl::StatusOr<EncodedPrompt> EncodeIds(std::vector<int32_t> ids) const;

  const ModelConfig& config() const { return config_; }
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  // Bytes of tensors held: the embedding matrix and the LSH projection.
  int64_t resident_bytes() const;

 private:
  PromptEncoder(ModelConfig config, std::unique_ptr<Tokenizer> tokenizer, at::Tensor embeddings,
                TokenEncoder encoder)
      : config_(std::move(config)),
        tokenizer_(std::move(tokenizer)),
        embeddings_(std::move(embeddings)),
        encoder_(std::move(encoder)) {}

  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;  // null when the checkpoint has none
  at::Tensor embeddings_;                 // [vocab, hidden], CPU, the workers' dtype
  TokenEncoder encoder_;
};

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_PROMPT_ENCODER_H_
