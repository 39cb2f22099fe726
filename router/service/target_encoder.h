#ifndef SEMSHARE_ROUTER_SERVICE_TARGET_ENCODER_H_
#define SEMSHARE_ROUTER_SERVICE_TARGET_ENCODER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/token_mapping.h"

// The router's view of a prompt: token ids, E-cache codes and sketch. An interface so the
// router's headers stay free of libtorch (the real one wraps the engine's PromptEncoder).
namespace semshare::router {

struct EncodedTarget {
  std::vector<int32_t> token_ids;
  TokenCodes codes;
  std::vector<float> sketch;
};

class TargetEncoder {
 public:
  virtual ~TargetEncoder() = default;
  // Thread-safe.
  virtual absl::StatusOr<EncodedTarget> Encode(absl::string_view prompt) const = 0;
  // The same for a prompt given as token ids (with BOS); needs no tokenizer.
  virtual absl::StatusOr<EncodedTarget> EncodeIds(std::vector<int32_t> token_ids) const = 0;
  // InvalidArgument, naming the figures, when a prompt of `prompt_tokens` plus up to
  // `max_new_tokens` generated ones would not fit the model's context.
  virtual absl::Status CheckFitsContext(int64_t prompt_tokens, int64_t max_new_tokens) const = 0;
};

// PromptEncoder over `model_dir` (tokenizer and embedding matrix only); `worker_device` is
// the workers' device, so the codes are rounded as theirs are.
absl::StatusOr<std::unique_ptr<TargetEncoder>> LoadTargetEncoder(const std::string& model_dir,
                                                                 const std::string& worker_device);

}  // namespace semshare::router

#endif  // SEMSHARE_ROUTER_SERVICE_TARGET_ENCODER_H_
