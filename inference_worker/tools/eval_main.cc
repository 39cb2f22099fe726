// semshare-eval: quality and speed measurements of the engine.
//   semshare-eval fidelity --model DIR --pairs FILE.jsonl
//   semshare-eval ttft --model DIR --lengths 512,1024,... --repeats K
//   semshare-eval rope-ablation --model DIR --pairs FILE.jsonl
//   semshare-eval decode --model DIR --batch-sizes 1,2,4,8,16 --prompt-tokens 128
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/blas_core.h"
#include "common/status_macros.h"
#include "inference_worker/engine/evaluation.h"
#include "inference_worker/tools/reuse_flags.h"

ABSL_FLAG(std::string, pairs, "", "JSONL file of {reference, target, continuation} pairs");
ABSL_FLAG(int64_t, max_pairs, 0, "use at most this many pairs (0: all)");
ABSL_FLAG(int32_t, generate_tokens, 64, "fidelity: greedy tokens compared by ROUGE-L");
ABSL_FLAG(int32_t, continuation_tokens, 128, "fidelity: continuation tokens scored for perplexity");
ABSL_FLAG(std::string, lengths, "512,1024,2048,3072,4096,5120", "ttft: prompt lengths");
ABSL_FLAG(int32_t, repeats, 3, "ttft: repeats per method and length (median reported)");
ABSL_FLAG(double, edit_share, 0.1, "ttft: share of target tokens replaced");
ABSL_FLAG(uint64_t, seed, 1, "ttft: synthetic pair seed; decode: prompt seed");
ABSL_FLAG(std::string, batch_sizes, "1,2,4,8,16", "decode: sequences decoded together");
ABSL_FLAG(int64_t, prompt_tokens, 128, "decode: tokens per prompt");
ABSL_FLAG(int32_t, decode_tokens, 64, "decode: tokens generated per sequence");

namespace semshare {
namespace {

// The pairs of --pairs, read before the model loads so that a bad file fails fast.
absl::StatusOr<std::vector<EvalPair>> PairsFromFlags() {
  const std::string path = absl::GetFlag(FLAGS_pairs);
  if (path.empty()) return absl::InvalidArgumentError("--pairs FILE.jsonl is required");
  if (absl::GetFlag(FLAGS_max_pairs) < 0) {
    return absl::InvalidArgumentError("--max-pairs must be >= 0 (0: all)");
  }
  return ReadEvalPairs(path);
}

absl::StatusOr<FidelityOptions> FidelityOptionsFromFlags() {
  FidelityOptions options;
  options.generate_tokens = absl::GetFlag(FLAGS_generate_tokens);
  options.continuation_tokens = absl::GetFlag(FLAGS_continuation_tokens);
  options.max_pairs = absl::GetFlag(FLAGS_max_pairs);
  SEMSHARE_RETURN_IF_ERROR(options.Validate());
  return options;
}

// A comma-separated list of integers >= `min`, for --lengths and --batch-sizes.
absl::StatusOr<std::vector<int64_t>> IntListFlag(const char* flag, const std::string& value,
                                                 int64_t min) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipEmpty())) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(part, &v) || v < min) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", part, "' is not an integer >= ", min));
    }
    out.push_back(v);
  }
  return out;
}

absl::StatusOr<TtftOptions> TtftOptionsFromFlags() {
  TtftOptions options;
  SEMSHARE_ASSIGN_OR_RETURN(options.lengths,
                            IntListFlag("lengths", absl::GetFlag(FLAGS_lengths), 2));
  options.repeats = absl::GetFlag(FLAGS_repeats);
  options.edit_share = absl::GetFlag(FLAGS_edit_share);
  options.seed = absl::GetFlag(FLAGS_seed);
  SEMSHARE_RETURN_IF_ERROR(options.Validate());
  return options;
}

absl::StatusOr<DecodeSweepOptions> DecodeOptionsFromFlags() {
  DecodeSweepOptions options;
  SEMSHARE_ASSIGN_OR_RETURN(options.batch_sizes,
                            IntListFlag("batch-sizes", absl::GetFlag(FLAGS_batch_sizes), 1));
  options.prompt_tokens = absl::GetFlag(FLAGS_prompt_tokens);
  options.decode_tokens = absl::GetFlag(FLAGS_decode_tokens);
  options.repeats = absl::GetFlag(FLAGS_repeats);
  options.seed = absl::GetFlag(FLAGS_seed);
  SEMSHARE_RETURN_IF_ERROR(options.Validate());
  return options;
}

// What the figures in `result` were measured with: the engine settings and OpenBLAS's kernels
// (they change speed and rounding; common/blas_core.h).
void RecordSettings(const ReuseOptions& reuse, Json* result) {
  (*result)["options"] = ReuseOptionsToJson(reuse);
  (*result)["blas_core"] = BlasCoreName();
}

int Fidelity(const Engine& engine, const ReuseOptions& reuse, const std::vector<EvalPair>& pairs,
             const FidelityOptions& options) {
  absl::StatusOr<Json> result = RunFidelity(engine, pairs, reuse, options);
  if (!result.ok()) return Fail(result.status());
  RecordSettings(reuse, &*result);
  std::string table =
      absl::StrFormat("%-8s %6s %5s %7s %6s %7s %9s %9s %7s\n", "pair", "sim", "hit", "rougeL",
                      "top1", "ppl_x", "recompute", "kv_kept", "first");
  for (const Json& row : (*result)["pairs"].array_items()) {
    table +=
        absl::StrFormat("%-8s %6.3f %5s %7.3f %6.3f %7.3f %9.3f %9.3f %7s\n",
                        row["id"].string_value(), row["similarity"].number_value(),
                        row["hit"].bool_value() ? "yes" : "no", row["rouge_l"].number_value(),
                        row["top1_agree"].number_value(), row["ppl_ratio"].number_value(),
                        row["recompute_share"].number_value(), row["kv_kept_share"].number_value(),
                        row["first_token_agree"].bool_value() ? "same" : "diff");
  }
  const Json& s = (*result)["summary"];
  table += absl::StrFormat(
      "hits %d/%d (hit_rate %.2f); over hits: rouge_l_mean %.3f top1_agree_mean %.3f "
      "ppl_ratio_mean %.3f "
      "recompute_share_mean %.3f kv_kept_share_mean %.3f\n",
      static_cast<int>(s["hits"].number_value()), static_cast<int>(s["pairs"].number_value()),
      s["hit_rate"].number_value(), s["rouge_l_mean"].number_value(),
      s["top1_agree_mean"].number_value(), s["ppl_ratio_mean"].number_value(),
      s["recompute_share_mean"].number_value(), s["kv_kept_share_mean"].number_value());
  return EmitResult(*result, table);
}

int Ttft(const Engine& engine, const ReuseOptions& reuse, const TtftOptions& options) {
  absl::StatusOr<Json> result = RunTtftSweep(engine, reuse, options);
  if (!result.ok()) return Fail(result.status());
  RecordSettings(reuse, &*result);
  (*result)["model_fingerprint"] = engine.model().fingerprint();
  (*result)["device"] = engine.model().device().str();
  std::string table = absl::StrFormat(
      "%7s %10s %10s %12s %8s %6s %9s %10s %9s %9s %11s\n", "tokens", "full_ms", "prefix_ms",
      "semshare_ms", "speedup", "sim", "recompute", "compute", "bypassed", "peak_mb", "predicted");
  for (const Json& row : (*result)["rows"].array_items()) {
    const Json& s = row["semshare"];
    // The GPU allocator's peak where there is one, else the process's peak RSS.
    const double device_mb = s["peak_device_mb"].number_value();
    const Json& predicted = row["predicted_ms"];
    table += absl::StrFormat("%7d %10.1f %10.1f %12.1f %8.2f %6.3f %9.3f %10.3f %9s %9.0f %11s\n",
                             static_cast<int>(row["tokens"].number_value()),
                             row["full"]["ttft_ms"].number_value(),
                             row["prefix"]["ttft_ms"].number_value(), s["ttft_ms"].number_value(),
                             row["speedup"].number_value(), s["similarity"].number_value(),
                             s["recompute_share"].number_value(), s["compute_share"].number_value(),
                             s["bypassed"].bool_value() ? "yes" : "no",
                             device_mb >= 0 ? device_mb : s["peak_rss_mb"].number_value(),
                             absl::StrFormat("%.0f/%.0f", predicted["full"].number_value(),
                                             predicted["semshare"].number_value()));
  }
  return EmitResult(*result, table);
}

int Decode(const Engine& engine, const ReuseOptions& reuse, const DecodeSweepOptions& options) {
  absl::StatusOr<Json> result = RunDecodeSweep(engine, reuse, options);
  if (!result.ok()) return Fail(result.status());
  RecordSettings(reuse, &*result);
  (*result)["device"] = engine.model().device().str();
  std::string table = absl::StrFormat("%6s %10s %9s %12s %9s %6s\n", "batch", "decode_ms",
                                      "step_ms", "tokens/s", "speedup", "same");
  for (const Json& row : (*result)["rows"].array_items()) {
    table += absl::StrFormat(
        "%6d %10.1f %9.2f %12.1f %9.2f %6s\n", static_cast<int>(row["batch"].number_value()),
        row["decode_ms"].number_value(), row["step_ms"].number_value(),
        row["tokens_per_second"].number_value(), row["speedup_over_one"].number_value(),
        row["same_tokens_as_alone"].bool_value() ? "yes" : "NO");
  }
  return EmitResult(*result, table);
}

int RopeAblation(const Engine& engine, const ReuseOptions& reuse,
                 const std::vector<EvalPair>& pairs) {
  absl::StatusOr<Json> result =
      RunRopeAblation(engine, pairs, reuse, absl::GetFlag(FLAGS_max_pairs));
  if (!result.ok()) return Fail(result.status());
  RecordSettings(reuse, &*result);
  std::string table = absl::StrFormat("%-22s %12s %12s\n", "config", "rel_l2_dev", "similarity");
  for (const Json& row : (*result)["rows"].array_items()) {
    table += absl::StrFormat("%-22s %12.4f %12.3f\n", row["config"].string_value(),
                             row["relative_l2_deviation_mean"].number_value(),
                             row["similarity_mean"].number_value());
  }
  return EmitResult(*result, table);
}

int Run(const std::vector<std::string>& args) {
  const std::string command = args.size() == 1 ? args[0] : "";
  if (command != "fidelity" && command != "ttft" && command != "rope-ablation" &&
      command != "decode") {
    return Fail(absl::InvalidArgumentError(
        args.size() == 1
            ? absl::StrCat("unknown command '", command,
                           "'; expected fidelity, ttft, rope-ablation or decode")
            : "usage: semshare-eval fidelity|ttft|rope-ablation|decode --model DIR ..."));
  }
  // Every flag is checked before the model loads.
  absl::StatusOr<ReuseOptions> reuse = ReuseOptionsFromFlags();
  if (!reuse.ok()) return Fail(reuse.status());
  absl::StatusOr<EngineOptions> engine_options = EngineOptionsFromFlags();
  if (!engine_options.ok()) return Fail(engine_options.status());
  std::vector<EvalPair> pairs;
  FidelityOptions fidelity;
  TtftOptions ttft;
  DecodeSweepOptions decode;
  if (command == "decode") {
    absl::StatusOr<DecodeSweepOptions> options = DecodeOptionsFromFlags();
    if (!options.ok()) return Fail(options.status());
    decode = *std::move(options);
  } else if (command == "ttft") {
    absl::StatusOr<TtftOptions> options = TtftOptionsFromFlags();
    if (!options.ok()) return Fail(options.status());
    ttft = *std::move(options);
  } else {
    absl::StatusOr<std::vector<EvalPair>> read = PairsFromFlags();
    if (!read.ok()) return Fail(read.status());
    pairs = *std::move(read);
    if (command == "fidelity") {
      absl::StatusOr<FidelityOptions> options = FidelityOptionsFromFlags();
      if (!options.ok()) return Fail(options.status());
      fidelity = *options;
    }
  }
  absl::StatusOr<std::unique_ptr<Model>> model = LoadModelFromFlags();
  if (!model.ok()) return Fail(model.status());
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(model->get(), *engine_options);
  if (!engine.ok()) return Fail(engine.status());
  if (command == "fidelity") return Fidelity(**engine, *reuse, pairs, fidelity);
  if (command == "ttft") return Ttft(**engine, *reuse, ttft);
  if (command == "decode") return Decode(**engine, *reuse, decode);
  return RopeAblation(**engine, *reuse, pairs);
}

}  // namespace
}  // namespace semshare

int main(int argc, char** argv) {
  semshare::EnsureBlasKernelsMatchCpu(argv);  // before anything else runs
  const std::vector<std::string> args = semshare::ParseToolFlags(
      argc, argv,
      "semshare-eval fidelity|ttft|rope-ablation|decode --model DIR [--pairs FILE] [...]");
  return semshare::Run(args);
}
