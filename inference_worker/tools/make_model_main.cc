// semshare-make-model: writes a random-weight checkpoint of a model preset, for speed
// measurements on shapes of real models without downloading their weights.
//
//   semshare-make-model --preset bench-100m --out /tmp/bench-100m [--seed 0] [--dtype bfloat16]

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/blas_core.h"
#include "common/cli.h"
#include "common/json.h"
#include "inference_worker/engine/checkpoint.h"

ABSL_FLAG(std::string, preset, "", "model preset: tiny, bench-100m, llama-3.2-1b, llama-3-8b");
ABSL_FLAG(uint64_t, seed, 0, "random seed; the same seed gives the same weights");
ABSL_FLAG(std::string, out, "", "output directory (created if missing)");
ABSL_FLAG(std::string, dtype, "bfloat16", "weight dtype: bfloat16, float16 or float32");
ABSL_FLAG(std::string, json, "", "write the JSON report to this file (default: stdout)");

namespace semshare {
namespace {

int Run(const std::vector<std::string>& args) {
  if (!args.empty()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", args[0], "'; every option is a --flag")));
  }
  const std::string preset = absl::GetFlag(FLAGS_preset);
  const std::string out = absl::GetFlag(FLAGS_out);
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  if (absl::Status required = RequireFlags({{"preset", preset}, {"out", out}}); !required.ok()) {
    return Fail(required);
  }
  absl::StatusOr<ModelConfig> config = PresetConfig(preset);
  if (!config.ok()) return Fail(config.status());
  // Random weights are filled on at::get_num_threads() threads; libtorch may default to one
  // thread, which makes the llama-3-8b preset take minutes.
  at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  absl::StatusOr<CheckpointSummary> summary =
      WriteRandomCheckpointWithSummary(*config, seed, dtype, out);
  if (!summary.ok()) return Fail(summary.status());

  Json report = Json::MakeObject();
  report["preset"] = preset;
  report["seed"] = seed;
  report["dtype"] = dtype;
  report["out"] = out;
  report["parameters"] = summary->parameters;
  report["bytes"] = summary->bytes;
  report["fingerprint"] = summary->fingerprint;
  return EmitResultTo(
      report,
      absl::StrFormat("wrote %s: %.1fM parameters, %.1f MB of %s weights, "
                      "fingerprint %s, in %s\n",
                      preset, static_cast<double>(summary->parameters) / 1e6,
                      static_cast<double>(summary->bytes) / 1e6, dtype, summary->fingerprint, out),
      absl::GetFlag(FLAGS_json));
}

}  // namespace
}  // namespace semshare

int main(int argc, char** argv) {
  semshare::EnsureBlasKernelsMatchCpu(argv);  // before anything else runs
  return semshare::Run(semshare::ParseToolFlags(
      argc, argv,
      "Writes a random-weight Hugging Face checkpoint of a model preset.\n"
      "  semshare-make-model --preset NAME --out DIR [--seed S] [--dtype bfloat16] [--json FILE]"));
}
