#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_EVALUATION_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_EVALUATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json.h"
#include "common/synthetic_pair.h"  // MakeSyntheticPair, used with the evaluation
#include "inference_worker/engine/engine.h"

namespace semshare {

// ROUGE-L F1 between two token sequences (longest common subsequence). 1.0 when both are empty.
double RougeLF1(const std::vector<int32_t>& candidate, const std::vector<int32_t>& reference);

// How many leading tokens two sequences share (the index of the first difference).
int64_t SamePrefixTokens(const std::vector<int32_t>& a, const std::vector<int32_t>& b);

// Teacher forcing along `tokens` (full prefill's greedy continuation, say): the share of
// steps at which `prefill`'s cache makes the token of `tokens` its most likely next token,
// each step fed the token of `tokens`. 1.0 when `tokens` is empty.
absl::StatusOr<double> TeacherForcedAgreement(const Engine& engine, PrefillOutcome prefill,
                                              const std::vector<int32_t>& tokens,
                                              const ReuseOptions& options);

struct EvalPair {
  std::string id;
  std::string reference;
  std::string target;
  std::string continuation;
};

// Reads a JSONL file of pairs (fields reference, target, continuation; id optional).
absl::StatusOr<std::vector<EvalPair>> ReadEvalPairs(const std::string& path);

struct FidelityOptions {
  int32_t generate_tokens = 64;
  int32_t continuation_tokens = 128;  // continuation is cut to this many tokens
  int64_t max_pairs = 0;              // 0: all

  absl::Status Validate() const;  // both token counts >= 1, max_pairs >= 0
};

// For every pair: prefill the reference, serve the target with `reuse`, compare 64 greedy
// tokens with full prefill's (ROUGE-L, and same_prefix_tokens before the first difference) and
// the continuation's perplexity under both caches. top1_agree is the share of full's greedy
// tokens that are also the served cache's most likely token when fed full's tokens (teacher
// forcing): greedy ROUGE-L compounds one early flip over the rest of the text, top1_agree
// counts each step once, so it separates configurations with less noise.
// Returns {"pairs": [...], "summary": {...}}; the summary means are over hits.
absl::StatusOr<Json> RunFidelity(const Engine& engine, const std::vector<EvalPair>& pairs,
                                 const ReuseOptions& reuse, const FidelityOptions& options);

struct TtftOptions {
  std::vector<int64_t> lengths = {512, 1024, 2048, 3072, 4096, 5120};
  int32_t repeats = 3;
  double edit_share = 0.1;
  uint64_t seed = 1;

  absl::Status Validate() const;  // lengths non-empty and >= 2, repeats >= 1, edit_share in [0, 1)
};

// Median time to first token of full, prefix and semshare (with `reuse`'s settings) on a
// synthetic similar pair at each length. Returns {"rows": [...]}.
absl::StatusOr<Json> RunTtftSweep(const Engine& engine, const ReuseOptions& reuse,
                                  const TtftOptions& options);

// Relative L2 deviation of rearranged KV from the target's true KV, per configuration (E-cache
// RoPE on/off, key re-rotation on/off), averaged over pairs and layers. max_pairs: 0 for all.
absl::StatusOr<Json> RunRopeAblation(const Engine& engine, const std::vector<EvalPair>& pairs,
                                     const ReuseOptions& reuse, int64_t max_pairs);

struct DecodeSweepOptions {
  std::vector<int64_t> batch_sizes = {1, 2, 4, 8, 16};
  int64_t prompt_tokens = 128;
  int32_t decode_tokens = 64;
  int32_t repeats = 3;
  uint64_t seed = 1;

  absl::Status Validate()
      const;  // sizes non-empty and >= 1, prompt >= 1, tokens >= 2, repeats >= 1
};

// Batched decode throughput (the engine alone, no scheduler): for each batch size B, B random
// prompts are prefilled (untimed), then decoded together one token per step for decode_tokens
// tokens each (greedy, no stop token); the median of `repeats` timed decodes. Also checks that
// every sequence decodes exactly the tokens it decodes alone. Returns {"rows": [...]}: per size
// tokens_per_second (aggregate), step_ms, speedup over batch 1, same_tokens_as_alone.
absl::StatusOr<Json> RunDecodeSweep(const Engine& engine, const ReuseOptions& reuse,
                                    const DecodeSweepOptions& options);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_EVALUATION_H_
