#ifndef SEMSHARE_COMMON_TOKEN_MAPPING_H_
#define SEMSHARE_COMMON_TOKEN_MAPPING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace semshare {

// n-bit LSH codes of a prompt's tokens, packed row-major: token t owns
// words[t * words_per_code() .. (t + 1) * words_per_code()).
struct TokenCodes {
  int32_t nbits = 0;
  std::vector<uint64_t> words;

  int32_t words_per_code() const { return (nbits + 63) / 64; }
  int64_t size() const {
    return nbits == 0 ? 0 : static_cast<int64_t>(words.size()) / words_per_code();
  }
  const uint64_t* code(int64_t token) const { return words.data() + token * words_per_code(); }
};

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
  int num_threads = 0;       // 0: one per hardware thread

  absl::Status Validate() const;
};

// Steps 3-4 of the method (torch-free: the cache node scores and maps with it too) for one (target,
// reference) pair: the similarity score and, for every target token i, the reference token j(i) it
// reuses.
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

#endif  // SEMSHARE_COMMON_TOKEN_MAPPING_H_
