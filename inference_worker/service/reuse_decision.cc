#include "inference_worker/service/reuse_decision.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace semshare::worker {

int64_t ReferenceTokensSeen(const TokenMapping& mapping) {
  int32_t last = -1;
  for (int32_t s : mapping.source) last = std::max(last, s);
  return last + 1;
}

ReuseDecision DecideReuse(
    const ReuseCheck& check,
    const std::function<std::optional<std::string>(int64_t reference_tokens)>& bypass) {
  if (check.reference_fingerprint != check.worker_fingerprint)
    return {ReuseVerdict::kMiss, "the reference was made by another model"};
  if (check.mapping == nullptr ||
      static_cast<int64_t>(check.mapping->source.size()) != check.prompt_tokens)
    return {ReuseVerdict::kMiss, "the mapping does not cover the prompt"};
  if (check.mapping->similarity < check.threshold)
    return {ReuseVerdict::kMiss, "similarity below the threshold"};
  if (bypass) {
    if (std::optional<std::string> why = bypass(ReferenceTokensSeen(*check.mapping)))
      return {ReuseVerdict::kBypass, *std::move(why)};
  }
  return {ReuseVerdict::kReuse, ""};
}

}  // namespace semshare::worker
