#ifndef SEMSHARE_COMMON_SYNTHETIC_PAIR_H_
#define SEMSHARE_COMMON_SYNTHETIC_PAIR_H_

#include <cstdint>
#include <vector>

// In common/ (no libtorch) so the engine's evaluation and the cluster benchmark build the same
// pairs.
namespace semshare {

// A synthetic similar pair for speed measurements: the reference is `length` seeded random
// tokens; the target replaces `edit_share` of them (in runs of 1-4) with other random tokens
// and swaps adjacent spans of 16-64 tokens (one swap per 512 tokens), so substitution and
// re-ordering are both exercised.
struct SyntheticPair {
  std::vector<int32_t> reference;
  std::vector<int32_t> target;
};
SyntheticPair MakeSyntheticPair(int64_t length, double edit_share, int32_t vocab_size,
                                uint64_t seed, int32_t bos_id);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_SYNTHETIC_PAIR_H_
