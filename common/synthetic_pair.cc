#include "common/synthetic_pair.h"

#include <algorithm>
#include <cmath>
#include <random>

namespace semshare {

SyntheticPair MakeSyntheticPair(int64_t length, double edit_share, int32_t vocab_size,
                                uint64_t seed, int32_t bos_id) {
  std::mt19937_64 rng(seed);
  // Avoid the first ids (BOS/EOS/control tokens in most vocabularies).
  const int32_t low = std::min<int32_t>(16, vocab_size - 1);
  auto random_token = [&] {
    return static_cast<int32_t>(low + rng() % static_cast<uint64_t>(vocab_size - low));
  };
  SyntheticPair pair;
  pair.reference.resize(static_cast<size_t>(length));
  for (int32_t& t : pair.reference) t = random_token();
  if (bos_id >= 0 && length > 0) pair.reference[0] = bos_id;
  pair.target = pair.reference;
  // Substitutions in runs of 1-4 tokens.
  int64_t to_edit = static_cast<int64_t>(std::llround(edit_share * static_cast<double>(length)));
  while (to_edit > 0 && length > 2) {
    const int64_t run = std::min<int64_t>(to_edit, 1 + static_cast<int64_t>(rng() % 4));
    const int64_t start = 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(length - 1));
    for (int64_t i = start; i < std::min(length, start + run); ++i) pair.target[i] = random_token();
    to_edit -= run;
  }
  // Re-ordered passages: swap adjacent spans of 16-64 tokens, one swap per 512 tokens, so
  // the tokens of both spans move by up to 64 positions, as sentences re-ordered in a
  // re-quoted text do.
  const int64_t swaps = std::max<int64_t>(1, length / 512);
  for (int64_t s = 0; s < swaps && length > 256; ++s) {
    const int64_t span = 16 + static_cast<int64_t>(rng() % 49);
    const int64_t start =
        1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(length - 2 * span - 1));
    std::rotate(pair.target.begin() + start, pair.target.begin() + start + span,
                pair.target.begin() + start + 2 * span);
  }
  return pair;
}

}  // namespace semshare
