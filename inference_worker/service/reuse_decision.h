#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_REUSE_DECISION_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_REUSE_DECISION_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/token_mapping.h"

// Whether the worker reuses the reference the router named (pure: no engine, no transport).
namespace semshare::worker {

struct ReuseCheck {
  std::string worker_fingerprint;     // the worker's model
  std::string reference_fingerprint;  // the model that made the reference's KV
  int64_t prompt_tokens = 0;
  const TokenMapping* mapping = nullptr;
  double threshold = 0;  // the least similarity reused
};

enum class ReuseVerdict {
  kReuse,   // fetch (or gather locally) and recompute
  kMiss,    // the reference cannot be reused: a full prefill
  kBypass,  // reuse is predicted not to pay: a full prefill, nothing fetched
};

struct ReuseDecision {
  ReuseVerdict verdict = ReuseVerdict::kMiss;
  std::string reason;  // why not reused (empty for kReuse)
};

// The reference's length as far as the mapping shows it (its last position mapped to, + 1).
int64_t ReferenceTokensSeen(const TokenMapping& mapping);

// `bypass` is asked last, with the reference's length as the mapping shows it: why reuse would
// not pay, or nullopt.
ReuseDecision DecideReuse(
    const ReuseCheck& check,
    const std::function<std::optional<std::string>(int64_t reference_tokens)>& bypass);

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_REUSE_DECISION_H_
