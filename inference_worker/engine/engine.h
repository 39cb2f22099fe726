#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_ENGINE_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_ENGINE_H_

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/token_mapping.h"
#include "inference_worker/engine/ecache.h"
#include "inference_worker/engine/kv_cache.h"
#include "inference_worker/engine/model.h"
#include "inference_worker/engine/recompute.h"
#include "inference_worker/engine/retention.h"
#include "inference_worker/engine/sampler.h"

namespace semshare {

enum class ReuseMethod {
  kFull,      // no reuse: full prefill
  kPrefix,    // exact longest-common-prefix reuse, as a prefix cache does
  kSemShare,  // fuzzy token matching, rearrangement, selective recompute
};

absl::StatusOr<ReuseMethod> ParseReuseMethod(const std::string& name);
std::string ReuseMethodName(ReuseMethod method);

// Everything that decides how a target prompt is served. The defaults are the configuration
// the README recommends; the benchmark figures are measured with them.
struct ReuseOptions {
  ReuseMethod method = ReuseMethod::kSemShare;
  double similarity_threshold = 0.8;  // below it a semshare request is a miss (full prefill)
  ECacheOptions ecache;
  MappingOptions mapping;
  RecomputeOptions recompute;
  RetentionOptions retention;
  bool rerotate_keys = true;        // off is an ablation
  bool bypass = true;               // skip reuse when it is predicted not to pay
  int64_t observation_window = 32;  // queries whose attention ranks tokens for retention

  absl::Status Validate() const;
};

// A stored prompt: its tokens, E-cache codes and the exact KV of every layer.
struct Reference {
  std::vector<int32_t> ids;
  TokenCodes codes;
  ECacheOptions codes_options;  // what the codes were computed with
  at::Tensor sketch;            // float32 [hidden]
  KVCache kv;
};

// Wall time per stage of serving one request, milliseconds.
struct StageTimes {
  double encode_ms = 0;     // embeddings, E-cache, codes
  double match_ms = 0;      // similarity and mapping
  double rearrange_ms = 0;  // gather + key re-rotation
  double prefill_ms = 0;    // full prefill or selective recompute
  double retention_ms = 0;
  double decode_ms = 0;
  double kv_wait_ms = 0;  // prefill blocked waiting for gathered layers still in transfer
};

// The cache a target prompt is served from, and how it was made.
struct PrefillOutcome {
  KVCache cache;
  at::Tensor logits;  // float32 [vocab], for the token after the prompt
  std::vector<LayerAttentionStats> stats;
  std::vector<int64_t> layer_budgets;  // per layer, tokens kept after retention
  std::string method;                  // method actually used: full, prefix or semshare
  bool hit = false;                    // reused a reference's KV
  bool bypassed = false;               // reuse skipped because it would not pay
  std::string bypass_reason;
  double similarity = 0;
  int64_t prompt_tokens = 0;
  int64_t reused_prefix_tokens = 0;  // prefix method
  int64_t unmatched_tokens = 0;
  // Share of token-layers recomputed in layers 1.. (layer 0, always recomputed on a hit, is
  // excluded); 1.0 for full prefill.
  double recompute_share = 1.0;
  // Share of the full prefill's token-layers whose queries, attention and MLP ran, layer 0
  // included (fresh keys/values of a recompute set cost a small projection and are not counted).
  double compute_share = 1.0;
  double kv_kept_share = 1.0;  // token-layers kept after retention / full
  StageTimes times;

  // A deep copy (cache, logits and stats): decoding or scoring from one leaves the other as it
  // was, so one prefill can serve several decodes.
  PrefillOutcome Clone() const;
};

struct GenerateResult {
  PrefillOutcome prefill;
  std::vector<int32_t> tokens;
  double ttft_ms = 0;          // request start to first token chosen
  double latency_ms = 0;       // request start to last token
  int64_t kv_bytes = 0;        // KV held at the end of generation
  double kv_kept_share = 1.0;  // token-layers held at the end / full cache of that length
};

// Reference KV gathered into target order that arrives one layer at a time, as a cache node's
// FetchKV streams it: the engine asks for layer l just before it recomputes layer l, so the
// transfer of later layers overlaps the recompute of earlier ones.
class GatheredLayerSource {
 public:
  virtual ~GatheredLayerSource() = default;
  // Layer l, asked for in order 0, 1, ...; blocks until it has arrived. An error ends the prefill.
  virtual absl::StatusOr<LayerKV> Layer(int64_t l) = 0;
};

// What the bypass predicts a request costs, milliseconds.
struct ReusePrediction {
  double full_ms = 0;   // a full prefill
  double reuse_ms = 0;  // a semshare hit: encode, match, rearrange, selective recompute
  // The parts of the above that do not grow with the prompt (kernel launches, host round
  // trips, per-layer bookkeeping), measured on a short prompt; zero when not measured.
  double full_fixed_ms = 0;
  double reuse_fixed_ms = 0;
  // The counted work alone (flops and code scans at the speed measured on this device).
  double full_work_ms = 0;
  double reuse_work_ms = 0;
};

struct EngineOptions {
  // Whether the bypass measures the fixed costs of a full prefill and of a hit, once, on first
  // use, by serving a short synthetic pair both ways. Unset: on a GPU only. There a short prompt
  // costs several times its flops, and a hit has more small steps per layer than a full
  // prefill, so counting flops alone reuses where it loses. On the CPU short prompts cost their
  // flops (the ttft sweep never loses down to 32 tokens), and the bypass stays a deterministic
  // ratio of counted work.
  std::optional<bool> measure_fixed_costs;
  // Whether the bypass predicts as on a GPU (unset: on a GPU). Two things differ there, both
  // seen on an H100:
  // - Our prefill runs far below a lone matmul's speed (attention, norms and other
  //   memory-bound steps): a 4,096-row projection's speed predicted 20 ms for a 5,120-token
  //   llama-3.2-1b prefill that took 195. So when the fixed costs are measured, the speed is
  //   also calibrated, by a full prefill of 2,048 tokens (or the context, if shorter).
  // - A full prefill costs the larger of its fixed costs and its counted work, not their sum:
  //   the host enqueues a layer's kernels while the device works through earlier ones, so a
  //   long prompt's work hides the launches (llama-3.2-1b: 17 ms for 512 tokens, 18 for 64).
  // On the CPU the same threads launch and compute, so the fixed costs add, and the matmul's
  // speed is the prefill's. A hit's fixed costs add on both: it waits for the device in every
  // layer (its deviation ranking is read back to the host).
  std::optional<bool> gpu_cost_model;
};

// Serves prompts with the model, reusing a reference's KV by the chosen method. Thread-safe:
// requests share the model read-only.
class Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const Model* model,
                                                        const EngineOptions& options = {});

  // Full prefill of a prompt and its codes: what a miss stores as a new reference.
  absl::StatusOr<Reference> BuildReference(const std::vector<int32_t>& ids,
                                           const ECacheOptions& ecache = {}) const;

  // The KV cache for `target`, reusing `reference` (may be null) per `options`.
  absl::StatusOr<PrefillOutcome> Prefill(const std::vector<int32_t>& target,
                                         const Reference* reference,
                                         const ReuseOptions& options) const;

  // Prefill then decode.
  absl::StatusOr<GenerateResult> Generate(const std::vector<int32_t>& target,
                                          const Reference* reference, const ReuseOptions& options,
                                          const SamplingOptions& sampling) const;

  // Decode from a prefill already made (by Prefill or PrefillGathered with the same options).
  // ttft_ms and latency_ms count from this call, so they exclude the prefill.
  absl::StatusOr<GenerateResult> GenerateFrom(PrefillOutcome prefill, const ReuseOptions& options,
                                              const SamplingOptions& sampling) const;

  // A miss: full prefill then decode, as Generate with no reference, that also returns the
  // prompt as a reference (BuildReference's result: codes under options.ecache, the KV before
  // retention), so that storing a miss costs no second prefill. The reference's codes are
  // computed after the last token.
  absl::StatusOr<std::pair<GenerateResult, Reference>> GenerateMiss(
      const std::vector<int32_t>& target, const ReuseOptions& options,
      const SamplingOptions& sampling) const;

  // A semshare hit from reference KV already gathered into target order, as a cache node's
  // FetchKV streams it: row i of every layer is the reference token mapping.source[i], with
  // its reference position as the layer's position. Re-rotates keys, recomputes and applies
  // retention. Equals Prefill(target, &reference, options) for the reference and mapping that
  // produced `gathered`, when that is a hit (the threshold and bypass are the caller's: none
  // is applied here).
  absl::StatusOr<PrefillOutcome> PrefillGathered(const std::vector<int32_t>& target,
                                                 const TokenMapping& mapping, KVCache gathered,
                                                 const ReuseOptions& options) const;
  // The same with layers taken from `layers` as they arrive (the same result as with all of them
  // given at once). Each layer is checked against the model and the prompt when it arrives.
  absl::StatusOr<PrefillOutcome> PrefillGathered(const std::vector<int32_t>& target,
                                                 const TokenMapping& mapping,
                                                 GatheredLayerSource* layers,
                                                 const ReuseOptions& options) const;
  // PrefillGathered then decode, as Generate.
  absl::StatusOr<GenerateResult> GenerateGathered(const std::vector<int32_t>& target,
                                                  const TokenMapping& mapping, KVCache gathered,
                                                  const ReuseOptions& options,
                                                  const SamplingOptions& sampling) const;
  absl::StatusOr<GenerateResult> GenerateGathered(const std::vector<int32_t>& target,
                                                  const TokenMapping& mapping,
                                                  GatheredLayerSource* layers,
                                                  const ReuseOptions& options,
                                                  const SamplingOptions& sampling) const;

  // Why reusing a reference of `reference_tokens` for a target of `target_tokens` is predicted
  // not to pay (semshare at least 90% of a full prefill's time), or nullopt when it pays or
  // `options.bypass` is off. Prefill applies it; a caller of PrefillGathered applies it itself.
  std::optional<std::string> BypassReason(int64_t target_tokens, int64_t reference_tokens,
                                          const ReuseOptions& options) const;
  // The prediction the bypass decides by: counted flops and code-scan work at the speed
  // measured on this device (once, on first use), plus the fixed costs when they are measured
  // (EngineOptions::measure_fixed_costs; the first call then serves a short pair both ways).
  ReusePrediction Predict(int64_t target_tokens, int64_t reference_tokens,
                          const ReuseOptions& options) const;

  // Mean negative log-likelihood of `continuation` following the prompt, decoding from the
  // prefilled cache (with decode-time eviction when the retention options ask for it). When
  // `top1` is given it receives, for each continuation token, the model's most likely token
  // at that step (teacher forcing: the next step is fed the continuation's token).
  absl::StatusOr<double> ContinuationNll(PrefillOutcome* prefill,
                                         const std::vector<int32_t>& continuation,
                                         const ReuseOptions& options,
                                         std::vector<int32_t>* top1 = nullptr) const;

  // Codes of a prompt under `ecache` (the router's and the cache node's view of a prompt).
  absl::StatusOr<TokenCodes> EncodeCodes(const std::vector<int32_t>& ids,
                                         const ECacheOptions& ecache,
                                         at::Tensor* sketch = nullptr) const;

  const Model& model() const { return *model_; }

 private:
  Engine(const Model* model, bool measure_fixed_costs, bool gpu_cost_model)
      : model_(model), measure_fixed_costs_(measure_fixed_costs), gpu_cost_model_(gpu_cost_model) {}

  absl::StatusOr<const TokenEncoder*> EncoderFor(const ECacheOptions& options) const;
  absl::Status FullPrefill(const std::vector<int32_t>& target, const ReuseOptions& options,
                           PrefillOutcome* out) const;
  absl::Status PrefixPrefill(const std::vector<int32_t>& target, const Reference& reference,
                             const ReuseOptions& options, PrefillOutcome* out) const;
  // Returns false (and leaves `out` untouched) on a miss.
  // Prefill; with `full_prefill_kv`, a full prefill's KV before retention is copied there.
  absl::StatusOr<PrefillOutcome> PrefillKeeping(const std::vector<int32_t>& target,
                                                const Reference* reference,
                                                const ReuseOptions& options,
                                                KVCache* full_prefill_kv) const;
  absl::StatusOr<bool> SemSharePrefill(const std::vector<int32_t>& target,
                                       const Reference& reference, const ReuseOptions& options,
                                       PrefillOutcome* out) const;
  // sampling.Validate(), and the prompt plus max_tokens within the model's context.
  absl::Status ValidateSampling(int64_t prompt_tokens, const SamplingOptions& sampling) const;
  absl::Status ValidateTarget(const std::vector<int32_t>& target,
                              const ReuseOptions& options) const;
  // Selective recompute over out->cache, rearranged into target order; `prepare_layer` (may be
  // empty) fills out->cache.layers[l] just before layer l is recomputed.
  absl::Status RecomputeRearranged(const at::Tensor& embeddings, const TokenMapping& mapping,
                                   const ReuseOptions& options,
                                   const std::function<absl::Status(int64_t)>& prepare_layer,
                                   PrefillOutcome* out) const;
  absl::StatusOr<GenerateResult> Decode(PrefillOutcome prefill, const ReuseOptions& options,
                                        const SamplingOptions& sampling,
                                        std::chrono::steady_clock::time_point start) const;
  void ApplyRetention(const ReuseOptions& options, const std::vector<std::vector<uint8_t>>& protect,
                      PrefillOutcome* out) const;
  void EvictForDecode(const ReuseOptions& options, PrefillOutcome* prefill) const;
  // Predicted milliseconds of a full prefill and of a semshare hit from counted work alone.
  ReusePrediction PredictWork(int64_t target_tokens, int64_t reference_tokens,
                              const ReuseOptions& options) const;
  // Serves a short synthetic pair with full prefill and with semshare (no bypass, no
  // threshold) and returns what each took beyond its predicted work, milliseconds.
  absl::StatusOr<std::pair<double, double>> MeasureFixedCosts(const ReuseOptions& options) const;
  // The fastest of `timed_runs` prefills of `target` after one untimed warm-up (a GPU's first
  // runs select kernels), milliseconds; no bypass, no similarity threshold.
  absl::StatusOr<double> BestPrefillMs(const std::vector<int32_t>& target,
                                       const Reference* reference, ReuseOptions options,
                                       int timed_runs) const;
  // Rescales the counted-work speed so that a full prefill of 2,048 tokens (or the context) is
  // predicted as long as it measures (EngineOptions::gpu_cost_model).
  absl::Status CalibrateSpeedByPrefill(const ReuseOptions& options) const;

  const Model* model_;
  const bool measure_fixed_costs_;
  const bool gpu_cost_model_;
  // Held while the fixed costs are measured, which serves requests (and so takes mutex_).
  mutable absl::Mutex fixed_costs_mutex_ ABSL_ACQUIRED_BEFORE(mutex_);
  mutable std::optional<std::pair<double, double>> fixed_costs_ms_
      ABSL_GUARDED_BY(fixed_costs_mutex_);
  mutable absl::Mutex mutex_;
  mutable std::map<std::tuple<bool, double, int32_t, uint64_t>, std::unique_ptr<TokenEncoder>>
      encoders_ ABSL_GUARDED_BY(mutex_);
  mutable double flops_per_second_ ABSL_GUARDED_BY(mutex_) = 0;
  mutable double hamming_words_per_second_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_ENGINE_H_
