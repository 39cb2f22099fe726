// semshare-make-model: writes a random-weight checkpoint of a model preset, for speed
// measurements on shapes of real models without downloading their weights.
//
//   semshare-make-model --preset bench-100m --out /tmp/bench-100m [--seed 0] [--dtype bfloat16]

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "common/json.h"
#include "inference_worker/engine/checkpoint.h"

ABSL_FLAG(std::string, preset, "", "model preset: tiny, bench-100m, llama-3.2-1b, llama-3-8b");
ABSL_FLAG(uint64_t, seed, 0, "random seed; the same seed gives the same weights");
ABSL_FLAG(std::string, out, "", "output directory (created if missing)");
ABSL_FLAG(std::string, dtype, "bfloat16", "weight dtype: bfloat16, float16 or float32");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Writes a random-weight Hugging Face checkpoint of a model preset.\n"
      "  semshare-make-model --preset NAME --out DIR [--seed S] [--dtype bfloat16]");
  absl::ParseCommandLine(argc, argv);
  const std::string preset = absl::GetFlag(FLAGS_preset);
  const std::string out = absl::GetFlag(FLAGS_out);
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  if (preset.empty() || out.empty()) {
    std::fprintf(stderr, "semshare-make-model: --preset and --out are required\n");
    return 1;
  }

  absl::StatusOr<semshare::ModelConfig> config = semshare::PresetConfig(preset);
  if (!config.ok()) {
    std::fprintf(stderr, "semshare-make-model: %s\n", config.status().ToString().c_str());
    return 1;
  }
  // Random weights are filled in parallel (at::parallel_for); libtorch may default to one
  // thread, which makes the llama-3-8b preset take minutes.
  at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  absl::StatusOr<semshare::CheckpointSummary> summary =
      semshare::WriteRandomCheckpointWithSummary(*config, seed, dtype, out);
  if (!summary.ok()) {
    std::fprintf(stderr, "semshare-make-model: %s\n", summary.status().ToString().c_str());
    return 1;
  }

  semshare::Json report = semshare::Json::MakeObject();
  report["preset"] = preset;
  report["seed"] = seed;
  report["dtype"] = dtype;
  report["out"] = out;
  report["parameters"] = summary->parameters;
  report["bytes"] = summary->bytes;
  report["fingerprint"] = summary->fingerprint;
  std::printf("%s\n", report.Dump().c_str());
  std::printf("wrote %s: %.1fM parameters, %.1f MB of %s weights, fingerprint %s, in %s\n",
              preset.c_str(), static_cast<double>(summary->parameters) / 1e6,
              static_cast<double>(summary->bytes) / 1e6, dtype.c_str(),
              summary->fingerprint.c_str(), out.c_str());
  return 0;
}
