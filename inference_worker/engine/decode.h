#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_DECODE_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_DECODE_H_

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "inference_worker/engine/model.h"
#include "inference_worker/engine/prefill_outcome.h"
#include "inference_worker/engine/retention.h"
#include "inference_worker/engine/sampler.h"

namespace semshare {

// One sequence being decoded, alone or in a batch with others: its cache (in `prefill`), its
// sampling state and the tokens chosen so far. Sampling stays per sequence.
struct DecodeSequence {
  PrefillOutcome prefill;
  RetentionOptions retention;  // decode-time eviction
  SamplingOptions sampling;
  std::mt19937_64 rng;
  std::vector<int32_t> tokens;
  SteadyClock::time_point start;  // what ttft_ms and latency count from
  SteadyClock::time_point first_token_time;
  double ttft_ms = 0;
  bool finished = false;  // max_tokens reached, a stop token chosen, or cancelled
  absl::Status status;    // Cancelled when on_token asked to stop
};

// Starts decoding from a prefill: chooses the first token from its logits (no forward pass).
// The sequence is finished at once when max_tokens is 0 or the token stops it.
DecodeSequence StartDecode(PrefillOutcome prefill, const RetentionOptions& retention,
                           const SamplingOptions& sampling, SteadyClock::time_point start);

// Advances every unfinished sequence of `batch` by one token in one batched forward pass
// (Model::DecodeBatch: the same bits for a sequence whatever else is in the batch), then evicts
// per each sequence's retention and samples per its own options. May throw c10::Error.
void DecodeStep(const Model& model, absl::Span<DecodeSequence* const> batch);

// The result of a finished sequence (its status when it was cancelled).
absl::StatusOr<GenerateResult> FinishDecode(const Model& model, DecodeSequence sequence);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_DECODE_H_
