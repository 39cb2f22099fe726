#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_PREFILL_TASK_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_PREFILL_TASK_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/token_mapping.h"
#include "inference_worker/engine/kv_cache.h"
#include "inference_worker/engine/model.h"
#include "inference_worker/engine/prefill_outcome.h"
#include "inference_worker/engine/reuse_options.h"

namespace semshare {

// Reference KV gathered into target order that arrives one layer at a time, as a cache node's
// FetchKV streams it: the engine asks for layer l just before it recomputes layer l, so the
// transfer of later layers overlaps the recompute of earlier ones.
class GatheredLayerSource {
 public:
  virtual ~GatheredLayerSource() = default;
  // Whether Layer(l) would return without waiting: the layer has arrived, or the transfer has
  // ended (Layer then returns its error). A scheduler runs other work meanwhile.
  virtual bool LayerReady(int64_t l) { return true; }
  // Layer l, asked for in order 0, 1, ...; blocks until it has arrived. An error ends the prefill.
  virtual absl::StatusOr<LayerKV> Layer(int64_t l) = 0;
};

// How a prefill is cut into pieces (DESIGN.md, "Serving under load"): a scheduler runs one
// piece between two batched decode steps, so no prefill stalls running decodes for longer.
struct PrefillPieces {
  // Tokens per piece of a full or prefix prefill (each piece runs every layer); 0: the whole
  // prompt in one piece. The cut changes float rounding (attention sums over other key counts),
  // so the same prompt with the same chunking gives the same bits, alone or among others.
  int64_t chunk_tokens = 0;
  // Layers per piece of a selective recompute (the same bits however many).
  int64_t recompute_layers = 1;
  // A full prefill also keeps a copy of its KV before retention (what a miss stores).
  bool keep_full_kv = false;

  absl::Status Validate() const;
};

// A prefill that runs in bounded pieces. Not thread-safe: one caller steps it.
class PrefillTask {
 public:
  virtual ~PrefillTask() = default;
  // Whether the next piece would run without waiting for KV still in transfer.
  virtual bool Ready() { return true; }
  // Runs the next piece. An error ends the task (the caller may serve the request another way).
  virtual absl::Status Step() = 0;
  virtual bool done() const = 0;
  // After done(): the outcome, retention applied. Once.
  virtual absl::StatusOr<PrefillOutcome> Finish() = 0;
  // With PrefillPieces::keep_full_kv, after Finish of a full prefill: its KV before retention.
  virtual KVCache TakeFullKV() { return {}; }
  // Piece timing, milliseconds: time spent in Step, and within it waiting for gathered layers.
  double step_ms() const { return step_ms_; }

 protected:
  double step_ms_ = 0;
};

// The tasks themselves. Engine::StartFullPrefill and friends check the prompt, the options and
// the KV shapes first and are the entry points to use; these assume checked inputs.
// A full prefill of `target` in chunks; with `prefix` (the exact KV of target's first tokens,
// positions 0..P-1 in every layer; may be empty), a prefix prefill of the rest.
std::unique_ptr<PrefillTask> NewChunkedPrefill(const Model* model, std::vector<int32_t> target,
                                               KVCache prefix, const ReuseOptions& options,
                                               const PrefillPieces& pieces);
// A semshare hit from gathered layers (row i of every layer is reference token
// mapping.source[i], at its reference position): keys re-rotated, selective recompute,
// retention. Each layer is checked against the model and the prompt when it arrives.
// `layers` must outlive the task.
std::unique_ptr<PrefillTask> NewGatheredRecompute(const Model* model, std::vector<int32_t> target,
                                                  TokenMapping mapping, GatheredLayerSource* layers,
                                                  const ReuseOptions& options,
                                                  const PrefillPieces& pieces);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_PREFILL_TASK_H_
