// semshare-generate: serve one prompt with the engine, optionally reusing a reference prompt.
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "common/blas_core.h"
#include "inference_worker/engine/engine.h"
#include "inference_worker/tools/reuse_flags.h"

ABSL_FLAG(std::string, prompt, "", "the prompt (target)");
ABSL_FLAG(std::string, reference, "", "a similar earlier prompt whose KV may be reused");
ABSL_FLAG(int32_t, max_tokens, 32, "tokens to generate");
ABSL_FLAG(double, temperature, 0.0, "0: greedy");
ABSL_FLAG(double, top_p, 1.0, "nucleus sampling share");
ABSL_FLAG(uint64_t, seed, 0, "sampling seed");

namespace semshare {
namespace {

int Run() {
  absl::StatusOr<ReuseOptions> reuse = ReuseOptionsFromFlags();
  if (!reuse.ok()) return Fail(reuse.status());
  if (absl::GetFlag(FLAGS_prompt).empty())
    return Fail(absl::InvalidArgumentError("--prompt is required"));
  SamplingOptions sampling;
  sampling.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  sampling.temperature = absl::GetFlag(FLAGS_temperature);
  sampling.top_p = absl::GetFlag(FLAGS_top_p);
  sampling.seed = absl::GetFlag(FLAGS_seed);
  // Every flag is checked before the model loads.
  if (absl::Status valid = sampling.Validate(); !valid.ok()) return Fail(valid);
  absl::StatusOr<EngineOptions> engine_options = EngineOptionsFromFlags();
  if (!engine_options.ok()) return Fail(engine_options.status());
  absl::StatusOr<std::unique_ptr<Model>> model = LoadModelFromFlags();
  if (!model.ok()) return Fail(model.status());
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(model->get(), *engine_options);
  if (!engine.ok()) return Fail(engine.status());

  absl::StatusOr<std::vector<int32_t>> target =
      (*model)->Tokenize(absl::GetFlag(FLAGS_prompt), /*add_bos=*/true);
  if (!target.ok()) return Fail(target.status());
  std::optional<Reference> reference;
  if (!absl::GetFlag(FLAGS_reference).empty()) {
    absl::StatusOr<std::vector<int32_t>> ref_ids =
        (*model)->Tokenize(absl::GetFlag(FLAGS_reference), /*add_bos=*/true);
    if (!ref_ids.ok()) return Fail(ref_ids.status());
    absl::StatusOr<Reference> built = (*engine)->BuildReference(*ref_ids, reuse->ecache);
    if (!built.ok()) return Fail(built.status());
    reference = std::move(built).value();
  }
  if (!(*model)->config().eos_token_ids.empty()) {
    for (int64_t eos : (*model)->config().eos_token_ids)
      sampling.stop_tokens.push_back(static_cast<int32_t>(eos));
  }
  absl::StatusOr<GenerateResult> result =
      (*engine)->Generate(*target, reference ? &*reference : nullptr, *reuse, sampling);
  if (!result.ok()) return Fail(result.status());

  const std::string text = (*model)->tokenizer()->Decode(result->tokens);
  Json out;
  out["text"] = text;
  Json ids = Json::MakeArray();
  for (int32_t t : result->tokens) ids.push_back(t);
  out["token_ids"] = ids;
  out["prompt_tokens"] = static_cast<int64_t>(target->size());
  out["method"] = result->prefill.method;
  out["cache_hit"] = result->prefill.hit;
  out["bypassed"] = result->prefill.bypassed;
  out["ttft_ms"] = result->ttft_ms;
  out["latency_ms"] = result->latency_ms;
  out["similarity"] = result->prefill.similarity;
  out["recompute_share"] = result->prefill.recompute_share;
  out["kv_bytes"] = result->kv_bytes;
  out["kv_kept_share"] = result->kv_kept_share;
  out["options"] = ReuseOptionsToJson(*reuse);
  const std::string table = absl::StrFormat(
      "%s\n\nmethod %-8s hit %-5s similarity %.3f recompute %.3f ttft %.1f ms kv %.2f MiB (kept "
      "%.0f%%)\n",
      text, result->prefill.method, result->prefill.hit ? "yes" : "no", result->prefill.similarity,
      result->prefill.recompute_share, result->ttft_ms, result->kv_bytes / 1048576.0,
      100 * result->kv_kept_share);
  return EmitResult(out, table);
}

}  // namespace
}  // namespace semshare

int main(int argc, char** argv) {
  semshare::EnsureBlasKernelsMatchCpu(argv);  // before anything else runs
  semshare::ParseToolFlags(
      argc, argv, "semshare-generate --model DIR --prompt TEXT [--reference TEXT] [--method ...]");
  return semshare::Run();
}
