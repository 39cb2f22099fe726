#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_TOKEN_MAPPING_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_TOKEN_MAPPING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference_worker/engine/ecache.h"

namespace semshare {

enum class MappingMode {
  kNearest,  // the paper's: nearest reference code by Hamming distance
  kRandom,   // ablation: a uniformly random reference token
};

absl::StatusOr<MappingMode> ParseMappingMode(const std::string& name);

struct MappingOptions {
  MappingMode mode = MappingMode::kNearest;
  // similarity = 1 - mean_i min(d_i / distance_norm, 1); d_i is the Hamming distance from
  // target token i to its nearest reference token.
  double distance_norm = 30.0;
  // A target token whose nearest distance exceeds this many bits is unmatched: its reused KV
  // would be a guess, so it is always recomputed.
  int32_t unmatched_radius = 24;
  uint64_t random_seed = 7;  // kRandom only
  int num_threads = 0;       // 0: ATen's intra-op thread count

  absl::Status Validate() const;
};

// Step 3-4 of the method for one (target, reference) pair: the similarity score and, for
// every target token i, the reference token j(i) it reuses.
struct TokenMapping {
  double similarity = 0;
  std::vector<int32_t> source;     // j(i), an index into the reference tokens
  std::vector<int32_t> distance;   // Hamming distance of i to j(i)
  std::vector<uint8_t> unmatched;  // 1 where distance > unmatched_radius
  int64_t num_unmatched = 0;
};

// Nearest-code mapping. Ties go to the reference token nearest in position to the target
// token, so a target identical to its reference maps every token to itself.
// InvalidArgument when the code widths differ or either side is empty.
absl::StatusOr<TokenMapping> MapTokens(const TokenCodes& target, const TokenCodes& reference,
                                       const MappingOptions& options);

// Popcount of a XOR b over `words` 64-bit words.
int32_t HammingDistance(const uint64_t* a, const uint64_t* b, int32_t words);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_TOKEN_MAPPING_H_
