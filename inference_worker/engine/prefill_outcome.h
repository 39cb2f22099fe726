#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_PREFILL_OUTCOME_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_PREFILL_OUTCOME_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "inference_worker/engine/kv_cache.h"
#include "inference_worker/engine/retention.h"

namespace semshare {

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

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_PREFILL_OUTCOME_H_
