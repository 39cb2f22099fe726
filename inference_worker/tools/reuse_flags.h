#ifndef SEMSHARE_INFERENCE_WORKER_TOOLS_REUSE_FLAGS_H_
#define SEMSHARE_INFERENCE_WORKER_TOOLS_REUSE_FLAGS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/cli.h"  // ParseToolFlags, Fail
#include "common/json.h"
#include "inference_worker/engine/engine.h"
#include "inference_worker/engine/model.h"

namespace semshare {

// The engine flags every tool shares (--model, --device, --method, --retention, ...), turned
// into validated options. Defaults are the README's recommended configuration.
absl::StatusOr<ReuseOptions> ReuseOptionsFromFlags();
absl::StatusOr<std::unique_ptr<Model>> LoadModelFromFlags();
// The engine's options (--bypass_fixed_costs), validated: parse them before loading the model.
absl::StatusOr<EngineOptions> EngineOptionsFromFlags();
Json ReuseOptionsToJson(const ReuseOptions& options);

// Writes JSON to --json FILE (and the table to stdout), or the JSON to stdout and the table
// to stderr when no file is named.
int EmitResult(const Json& result, const std::string& table);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_TOOLS_REUSE_FLAGS_H_
