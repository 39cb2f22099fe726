#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_ENGINE_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_ENGINE_H_

#include <ATen/core/Tensor.h>

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
#include "absl/types/span.h"
#include "common/clock.h"
#include "common/token_mapping.h"
#include "inference_worker/engine/decode.h"
#include "inference_worker/engine/ecache.h"
#include "inference_worker/engine/kv_cache.h"
#include "inference_worker/engine/model.h"
#include "inference_worker/engine/prefill_outcome.h"
#include "inference_worker/engine/prefill_task.h"
#include "inference_worker/engine/reuse_cost_model.h"
#include "inference_worker/engine/reuse_options.h"
#include "inference_worker/engine/sampler.h"

namespace semshare {

// A stored prompt: its tokens, E-cache codes and the exact KV of every layer.
struct Reference {
  std::vector<int32_t> ids;
  TokenCodes codes;
  ECacheOptions codes_options;  // what the codes were computed with
  at::Tensor sketch;            // float32 [hidden]
  KVCache kv;
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
// requests share the model read-only. No exception leaves a public method: ATen errors become
// Internal, allocation failures ResourceExhausted.
//
// Two ways to serve: in one call (Prefill, Generate*, for tools and tests), or in pieces for
// a scheduler that batches (Start*Prefill gives a PrefillTask stepped a piece at a time,
// StartDecode and DecodeStep advance a batch of sequences one token together). With the same
// PrefillPieces the two give the same bits; the one-call prefill is one piece.
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

  // Prefills in pieces. Each checks the prompt (and the sampling's fit in the context is the
  // caller's: CheckRequest) and returns a task to Step until done.
  // A full prefill (options.method is not consulted).
  absl::StatusOr<std::unique_ptr<PrefillTask>> StartFullPrefill(const std::vector<int32_t>& target,
                                                                const ReuseOptions& options,
                                                                const PrefillPieces& pieces) const;
  // A prefix prefill: `prefix` holds the exact KV of target's first P tokens (P < target size,
  // positions 0..P-1) in every layer; the rest is prefilled after it.
  absl::StatusOr<std::unique_ptr<PrefillTask>> StartPrefixPrefill(
      const std::vector<int32_t>& target, KVCache prefix, const ReuseOptions& options,
      const PrefillPieces& pieces) const;
  // A semshare hit from gathered layers, as PrefillGathered. `layers` must outlive the task.
  absl::StatusOr<std::unique_ptr<PrefillTask>> StartGatheredPrefill(
      const std::vector<int32_t>& target, const TokenMapping& mapping, GatheredLayerSource* layers,
      const ReuseOptions& options, const PrefillPieces& pieces) const;

  // The prompt is in the vocabulary, the sampling valid, and prompt plus max_tokens within the
  // model's context (the error then carries kContextLengthExceeded).
  absl::Status CheckRequest(const std::vector<int32_t>& target,
                            const SamplingOptions& sampling) const;

  // Batched decode: StartDecode chooses a prefill's first token; DecodeStep advances every
  // unfinished sequence of `batch` by one token in one forward pass (a sequence's tokens are
  // the same in any batch and alone); FinishDecode gives the result (or the sequence's status).
  absl::StatusOr<DecodeSequence> StartDecode(PrefillOutcome prefill, const ReuseOptions& options,
                                             const SamplingOptions& sampling,
                                             SteadyClock::time_point start) const;
  absl::Status DecodeStep(absl::Span<DecodeSequence* const> batch) const;
  absl::StatusOr<GenerateResult> FinishDecode(DecodeSequence sequence) const;

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

  // Testing: `fault` runs inside every DecodeStep's guard before the step and may throw what
  // ATen and the allocator throw (c10::Error, std::bad_alloc), to show that callers survive
  // it. Set it before the engine is shared between threads; empty: none.
  void SetDecodeFaultForTesting(std::function<void()> fault) { decode_fault_ = std::move(fault); }

 private:
  Engine(const Model* model, bool measure_fixed_costs, bool gpu_cost_model)
      : model_(model), measure_fixed_costs_(measure_fixed_costs), gpu_cost_model_(gpu_cost_model) {}

  absl::StatusOr<const TokenEncoder*> EncoderFor(const ECacheOptions& options) const;
  absl::StatusOr<TokenCodes> EncodeCodesUnguarded(const std::vector<int32_t>& ids,
                                                  const ECacheOptions& ecache,
                                                  at::Tensor* sketch) const;
  // Prefill; with `full_prefill_kv`, a full prefill's KV before retention is moved there.
  absl::StatusOr<PrefillOutcome> PrefillKeeping(const std::vector<int32_t>& target,
                                                const Reference* reference,
                                                const ReuseOptions& options,
                                                KVCache* full_prefill_kv) const;
  // Returns false (and leaves `out` as it was but for the match stages) on a miss.
  absl::StatusOr<bool> SemSharePrefill(const std::vector<int32_t>& target,
                                       const Reference& reference, const ReuseOptions& options,
                                       PrefillOutcome* out) const;
  absl::Status ValidateTarget(const std::vector<int32_t>& target,
                              const ReuseOptions& options) const;
  // Non-empty, in the vocabulary, and with max_tokens within the model's context.
  absl::Status CheckPrompt(const std::vector<int32_t>& target, int64_t max_tokens) const;
  absl::StatusOr<GenerateResult> Decode(PrefillOutcome prefill, const ReuseOptions& options,
                                        const SamplingOptions& sampling,
                                        SteadyClock::time_point start) const;

  // cost_calibration.cc: the speeds the bypass counts work at, measured once on first use.
  MeasuredSpeeds Speeds(const ReuseOptions& options) const;
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
  std::function<void()> decode_fault_;
  const bool measure_fixed_costs_;
  const bool gpu_cost_model_;
  // Held while the fixed costs are measured, which serves requests (and so takes mutex_).
  mutable absl::Mutex fixed_costs_mutex_ ABSL_ACQUIRED_BEFORE(mutex_);
  mutable std::optional<std::pair<double, double>> fixed_costs_ms_
      ABSL_GUARDED_BY(fixed_costs_mutex_);
  mutable absl::Mutex mutex_;
  mutable std::map<std::tuple<bool, double, int32_t, uint64_t>, std::unique_ptr<TokenEncoder>>
      encoders_ ABSL_GUARDED_BY(mutex_);
  mutable MeasuredSpeeds speeds_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_ENGINE_H_
