#include "inference_worker/engine/prompt_encoder.h"

#include <ATen/ATen.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "inference_worker/engine/model.h"
#include "inference_worker/engine/safetensors.h"

namespace semshare {
namespace {

constexpr char kEmbeddingName[] = "model.embed_tokens.weight";

absl::StatusOr<at::ScalarType> WorkerDtype(const PromptEncoderOptions& options) {
  try {
    // Only names the workers' device: the router itself computes on the CPU.
    return ResolveDtype(options.dtype, at::Device(options.worker_device));
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker device '", options.worker_device, "': ", e.what_without_backtrace()));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<PromptEncoder>> PromptEncoder::Load(
    const std::string& dir, const PromptEncoderOptions& options) {
  SEMSHARE_ASSIGN_OR_RETURN(const at::ScalarType dtype, WorkerDtype(options));
  SEMSHARE_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(dir));
  SEMSHARE_ASSIGN_OR_RETURN(TokenEncoder encoder, TokenEncoder::Create(config, options.ecache));
  SEMSHARE_ASSIGN_OR_RETURN(
      TensorMap tensors,
      ReadCheckpointTensors(dir, [](const std::string& name) { return name == kEmbeddingName; }));
  auto it = tensors.find(kEmbeddingName);
  if (it == tensors.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", dir, ": tensor '", kEmbeddingName, "' missing"));
  }
  const at::Tensor& stored = it->second;
  if (stored.dim() != 2 || stored.size(0) != config.vocab_size ||
      stored.size(1) != config.hidden_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", dir, ": tensor '", kEmbeddingName, "' has shape [",
                     absl::StrJoin(stored.sizes(), ", "), "], expected [", config.vocab_size, ", ",
                     config.hidden_size, "]"));
  }
  if (!at::isFloatingType(stored.scalar_type())) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", dir, ": tensor '", kEmbeddingName, "' is not floating point"));
  }
  // As Model::FromCheckpoint: the stored rows rounded to the compute dtype.
  at::Tensor embeddings = stored.to(dtype).contiguous();
  tensors.clear();

  SEMSHARE_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, LoadModelTokenizer(dir, config));
  return std::unique_ptr<PromptEncoder>(new PromptEncoder(
      std::move(config), std::move(tokenizer), std::move(embeddings), std::move(encoder)));
}

absl::StatusOr<std::vector<int32_t>> PromptEncoder::Tokenize(absl::string_view text,
                                                             bool add_bos) const {
  if (tokenizer_ == nullptr) {
    return absl::FailedPreconditionError("the model directory has no tokenizer");
  }
  return TokenizePrompt(*tokenizer_, text, add_bos);
}

absl::StatusOr<EncodedPrompt> PromptEncoder::Encode(absl::string_view text) const {
  SEMSHARE_ASSIGN_OR_RETURN(std::vector<int32_t> ids, Tokenize(text, /*add_bos=*/true));
  return EncodeIds(std::move(ids));
}

absl::StatusOr<EncodedPrompt> PromptEncoder::EncodeIds(std::vector<int32_t> ids) const {
  if (ids.empty()) return absl::InvalidArgumentError("empty prompt");
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token ", i, " has id ", ids[i], ", outside the vocabulary of ", config_.vocab_size));
    }
  }
  // The same operations as Engine::EncodeCodes over Model::Embed.
  const at::Tensor index = at::tensor(std::vector<int64_t>(ids.begin(), ids.end()), at::kLong);
  const at::Tensor rotated = encoder_.RotatedEmbeddings(embeddings_.index_select(0, index));
  EncodedPrompt prompt;
  prompt.codes = encoder_.Encode(rotated);
  const at::Tensor sketch = encoder_.Sketch(rotated).contiguous();
  prompt.sketch.assign(sketch.data_ptr<float>(), sketch.data_ptr<float>() + sketch.numel());
  prompt.token_ids = std::move(ids);
  return prompt;
}

int64_t PromptEncoder::resident_bytes() const {
  return static_cast<int64_t>(embeddings_.nbytes()) + encoder_.projection_bytes();
}

}  // namespace semshare
