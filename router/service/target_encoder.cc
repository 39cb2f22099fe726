#include "router/service/target_encoder.h"

#include <utility>

#include "common/status_macros.h"
#include "inference_worker/engine/prompt_encoder.h"

namespace semshare::router {
namespace {

class PromptTargetEncoder final : public TargetEncoder {
 public:
  explicit PromptTargetEncoder(std::unique_ptr<PromptEncoder> encoder)
      : encoder_(std::move(encoder)) {}

  absl::StatusOr<EncodedTarget> Encode(absl::string_view prompt) const override {
    SEMSHARE_ASSIGN_OR_RETURN(EncodedPrompt encoded, encoder_->Encode(prompt));
    return ToTarget(std::move(encoded));
  }

  absl::StatusOr<EncodedTarget> EncodeIds(std::vector<int32_t> token_ids) const override {
    SEMSHARE_ASSIGN_OR_RETURN(EncodedPrompt encoded, encoder_->EncodeIds(std::move(token_ids)));
    return ToTarget(std::move(encoded));
  }

  absl::Status CheckFitsContext(int64_t prompt_tokens, int64_t max_new_tokens) const override {
    return semshare::CheckFitsContext(encoder_->config(), prompt_tokens, max_new_tokens);
  }

 private:
  static EncodedTarget ToTarget(EncodedPrompt encoded) {
    return EncodedTarget{std::move(encoded.token_ids), std::move(encoded.codes),
                         std::move(encoded.sketch)};
  }

  std::unique_ptr<PromptEncoder> encoder_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<TargetEncoder>> LoadTargetEncoder(const std::string& model_dir,
                                                                 const std::string& worker_device) {
  PromptEncoderOptions options;
  options.worker_device = worker_device;
  SEMSHARE_ASSIGN_OR_RETURN(std::unique_ptr<PromptEncoder> encoder,
                            PromptEncoder::Load(model_dir, options));
  return std::make_unique<PromptTargetEncoder>(std::move(encoder));
}

}  // namespace semshare::router
