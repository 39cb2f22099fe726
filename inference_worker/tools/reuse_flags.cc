#include "inference_worker/tools/reuse_flags.h"

#include <ATen/Parallel.h>

#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

ABSL_FLAG(std::string, model, "", "Hugging Face checkpoint directory");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda or cuda:N");
ABSL_FLAG(std::string, dtype, "auto",
          "auto (float32 on CPU, bfloat16 on CUDA), float32, bfloat16, float16");
ABSL_FLAG(int, threads, 0, "CPU threads for libtorch (0: all cores)");
ABSL_FLAG(int64_t, decode_tile_rows, semshare::ModelOptions{}.decode_tile_rows,
          "rows per tile of a batched decode step (a sequence's tokens are the same in any "
          "batch; a batch of B costs ceil(B / rows) passes over the weights)");
ABSL_FLAG(std::string, method, "semshare", "full, prefix or semshare");
ABSL_FLAG(std::string, retention, "exp_decay",
          "none, exp_decay, snapkv, h2o, streaming, pyramid, tova");
ABSL_FLAG(bool, decode_eviction, true, "hold each layer at its prefill budget during decode");
ABSL_FLAG(double, similarity_threshold, 0.8, "below this similarity a request is a miss");
ABSL_FLAG(double, hd_share, 0.4, "share of tokens recomputed in layer 1");
ABSL_FLAG(double, recompute_decay, 0.6, "per-layer decay of the recompute share");
ABSL_FLAG(double, min_recompute_share, 0.05, "floor of the recompute share");
ABSL_FLAG(int64_t, last_tokens, 16, "last prompt tokens always recomputed");
ABSL_FLAG(double, ecache_divisor, 128.0, "E-cache RoPE positions are divided by this");
ABSL_FLAG(int32_t, code_bits, 256, "token LSH code width in bits");
ABSL_FLAG(bool, ecache_rope, true, "rotate the E-cache with RoPE (off: ablation)");
ABSL_FLAG(bool, rerotate_keys, true, "re-rotate reused keys to target positions (off: ablation)");
ABSL_FLAG(std::string, mapping, "nearest", "nearest or random (ablation)");
ABSL_FLAG(double, distance_norm, 30.0, "similarity = 1 - mean(min(d / distance_norm, 1))");
ABSL_FLAG(int32_t, unmatched_radius, 24, "tokens farther than this many bits are unmatched");
ABSL_FLAG(bool, bypass, true, "skip reuse when it is predicted not to pay");
ABSL_FLAG(std::string, bypass_fixed_costs, "auto",
          "auto, on or off: the bypass measures fixed per-request costs on a short pair at first "
          "use (auto: on a GPU only)");
ABSL_FLAG(double, r0, 1.0, "exp_decay: share kept by layer 0");
ABSL_FLAG(double, gamma, 0.75, "exp_decay: per-layer decay of the kept share");
ABSL_FLAG(double, r_min, 0.1, "exp_decay: floor of the kept share");
ABSL_FLAG(double, kv_budget, 0.55, "snapkv/h2o/tova/streaming/pyramid: share of KV kept");
ABSL_FLAG(int64_t, sink_tokens, 4, "retention: attention sinks always kept");
ABSL_FLAG(int64_t, recent_window, 32, "retention: most recent tokens always kept");
ABSL_FLAG(bool, merge_evicted, false,
          "retention: merge the tokens prefill pruning evicts into similar kept ones");
ABSL_FLAG(double, merge_min_similarity, 0.3,
          "retention: least key cosine similarity for an evicted token to merge");
ABSL_FLAG(int64_t, merge_window, 8,
          "retention: kept tokens nearest in position an evicted token may merge into (0: all)");
ABSL_FLAG(int64_t, observation_window, 32,
          "retention: the last prompt queries whose attention ranks tokens");
ABSL_FLAG(std::string, json, "", "write the JSON result to this file (default: stdout)");

namespace semshare {

absl::StatusOr<ReuseOptions> ReuseOptionsFromFlags() {
  ReuseOptions options;
  SEMSHARE_ASSIGN_OR_RETURN(options.method, ParseReuseMethod(absl::GetFlag(FLAGS_method)));
  SEMSHARE_ASSIGN_OR_RETURN(options.retention.policy,
                            ParseRetentionPolicy(absl::GetFlag(FLAGS_retention)));
  options.retention.decode_eviction = absl::GetFlag(FLAGS_decode_eviction);
  options.retention.r0 = absl::GetFlag(FLAGS_r0);
  options.retention.gamma = absl::GetFlag(FLAGS_gamma);
  options.retention.r_min = absl::GetFlag(FLAGS_r_min);
  options.retention.budget_share = absl::GetFlag(FLAGS_kv_budget);
  options.retention.sink_tokens = absl::GetFlag(FLAGS_sink_tokens);
  options.retention.recent_window = absl::GetFlag(FLAGS_recent_window);
  options.retention.merge_evicted = absl::GetFlag(FLAGS_merge_evicted);
  options.retention.merge_min_similarity = absl::GetFlag(FLAGS_merge_min_similarity);
  options.retention.merge_window = absl::GetFlag(FLAGS_merge_window);
  options.observation_window = absl::GetFlag(FLAGS_observation_window);
  options.similarity_threshold = absl::GetFlag(FLAGS_similarity_threshold);
  options.recompute.hd_share = absl::GetFlag(FLAGS_hd_share);
  options.recompute.decay = absl::GetFlag(FLAGS_recompute_decay);
  options.recompute.min_share = absl::GetFlag(FLAGS_min_recompute_share);
  options.recompute.last_tokens = absl::GetFlag(FLAGS_last_tokens);
  options.ecache.position_divisor = absl::GetFlag(FLAGS_ecache_divisor);
  options.ecache.nbits = absl::GetFlag(FLAGS_code_bits);
  options.ecache.use_rope = absl::GetFlag(FLAGS_ecache_rope);
  options.rerotate_keys = absl::GetFlag(FLAGS_rerotate_keys);
  SEMSHARE_ASSIGN_OR_RETURN(options.mapping.mode, ParseMappingMode(absl::GetFlag(FLAGS_mapping)));
  options.mapping.distance_norm = absl::GetFlag(FLAGS_distance_norm);
  options.mapping.unmatched_radius = absl::GetFlag(FLAGS_unmatched_radius);
  options.bypass = absl::GetFlag(FLAGS_bypass);
  SEMSHARE_RETURN_IF_ERROR(options.Validate());
  return options;
}

absl::StatusOr<EngineOptions> EngineOptionsFromFlags() {
  EngineOptions options;
  const std::string fixed = absl::GetFlag(FLAGS_bypass_fixed_costs);
  if (fixed == "on") {
    options.measure_fixed_costs = true;
  } else if (fixed == "off") {
    options.measure_fixed_costs = false;
  } else if (fixed != "auto") {
    return absl::InvalidArgumentError(
        absl::StrCat("--bypass_fixed_costs: '", fixed, "' is not auto, on or off"));
  }
  return options;
}

absl::StatusOr<std::unique_ptr<Model>> LoadModelFromFlags() {
  const std::string dir = absl::GetFlag(FLAGS_model);
  if (dir.empty()) return absl::InvalidArgumentError("--model DIR is required");
  int threads = absl::GetFlag(FLAGS_threads);
  if (threads < 0) return absl::InvalidArgumentError("--threads must be >= 0 (0: all cores)");
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Debian's libtorch defaults to one thread here; be explicit.
  at::set_num_threads(threads);
  ModelOptions options;
  options.device = absl::GetFlag(FLAGS_device);
  options.dtype = absl::GetFlag(FLAGS_dtype);
  options.decode_tile_rows = absl::GetFlag(FLAGS_decode_tile_rows);
  return Model::Load(dir, options);
}

Json ReuseOptionsToJson(const ReuseOptions& o) {
  Json j;
  j["method"] = ReuseMethodName(o.method);
  j["retention"] = RetentionPolicyName(o.retention.policy);
  j["decode_eviction"] = o.retention.decode_eviction;
  j["similarity_threshold"] = o.similarity_threshold;
  j["hd_share"] = o.recompute.hd_share;
  j["recompute_decay"] = o.recompute.decay;
  j["min_recompute_share"] = o.recompute.min_share;
  j["ecache_divisor"] = o.ecache.position_divisor;
  j["code_bits"] = o.ecache.nbits;
  j["ecache_rope"] = o.ecache.use_rope;
  j["rerotate_keys"] = o.rerotate_keys;
  j["mapping"] = o.mapping.mode == MappingMode::kNearest ? "nearest" : "random";
  j["bypass"] = o.bypass;
  j["r0"] = o.retention.r0;
  j["gamma"] = o.retention.gamma;
  j["r_min"] = o.retention.r_min;
  j["kv_budget"] = o.retention.budget_share;
  j["sink_tokens"] = o.retention.sink_tokens;
  j["recent_window"] = o.retention.recent_window;
  j["merge_evicted"] = o.retention.merge_evicted;
  j["merge_min_similarity"] = o.retention.merge_min_similarity;
  j["merge_window"] = o.retention.merge_window;
  j["observation_window"] = o.observation_window;
  j["last_tokens"] = o.recompute.last_tokens;
  j["distance_norm"] = o.mapping.distance_norm;
  j["unmatched_radius"] = o.mapping.unmatched_radius;
  return j;
}

int EmitResult(const Json& result, const std::string& table) {
  return EmitResultTo(result, table, absl::GetFlag(FLAGS_json));
}

}  // namespace semshare
