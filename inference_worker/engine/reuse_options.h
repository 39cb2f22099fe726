#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_REUSE_OPTIONS_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_REUSE_OPTIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/token_mapping.h"
#include "inference_worker/engine/ecache.h"
#include "inference_worker/engine/recompute.h"
#include "inference_worker/engine/retention.h"

namespace semshare {

enum class ReuseMethod {
  kFull,      // no reuse: full prefill
  kPrefix,    // exact longest-common-prefix reuse, as a prefix cache does
  kSemShare,  // fuzzy token matching, rearrangement, selective recompute
};

absl::StatusOr<ReuseMethod> ParseReuseMethod(const std::string& name);
std::string ReuseMethodName(ReuseMethod method);

// The retention every binary runs by default: exp_decay, held at its budget during decode.
RetentionOptions RecommendedRetention();

// Everything that decides how a target prompt is served. The only place defaults live:
// ReuseOptions{} is the configuration the README recommends and every tool's flags default to
// (tests/inference_worker/engine_tools_test.py checks the tools' JSON against it).
struct ReuseOptions {
  ReuseMethod method = ReuseMethod::kSemShare;
  double similarity_threshold = 0.8;  // below it a semshare request is a miss (full prefill)
  ECacheOptions ecache;
  MappingOptions mapping;
  RecomputeOptions recompute;
  RetentionOptions retention = RecommendedRetention();
  bool rerotate_keys = true;        // off is an ablation
  bool bypass = true;               // skip reuse when it is predicted not to pay
  int64_t observation_window = 32;  // queries whose attention ranks tokens for retention

  absl::Status Validate() const;
};

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_REUSE_OPTIONS_H_
