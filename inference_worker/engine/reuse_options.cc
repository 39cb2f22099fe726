#include "inference_worker/engine/reuse_options.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace semshare {

absl::StatusOr<ReuseMethod> ParseReuseMethod(const std::string& name) {
  if (name == "full") return ReuseMethod::kFull;
  if (name == "prefix") return ReuseMethod::kPrefix;
  if (name == "semshare") return ReuseMethod::kSemShare;
  return absl::InvalidArgumentError(
      absl::StrCat("method '", name, "' is not one of full, prefix, semshare"));
}

std::string ReuseMethodName(ReuseMethod method) {
  switch (method) {
    case ReuseMethod::kFull:
      return "full";
    case ReuseMethod::kPrefix:
      return "prefix";
    case ReuseMethod::kSemShare:
      return "semshare";
  }
  return "unknown";
}

RetentionOptions RecommendedRetention() {
  RetentionOptions retention;
  retention.policy = RetentionPolicy::kExpDecay;
  retention.decode_eviction = true;
  return retention;
}

absl::Status ReuseOptions::Validate() const {
  if (!(similarity_threshold >= 0 && similarity_threshold <= 1)) {
    return absl::InvalidArgumentError("similarity_threshold must be in [0, 1]");
  }
  if (observation_window < 1) return absl::InvalidArgumentError("observation_window must be >= 1");
  SEMSHARE_RETURN_IF_ERROR(ecache.Validate());
  SEMSHARE_RETURN_IF_ERROR(mapping.Validate());
  SEMSHARE_RETURN_IF_ERROR(recompute.Validate());
  return retention.Validate();
}

}  // namespace semshare
