#ifndef SEMSHARE_COMMON_HASH_H_
#define SEMSHARE_COMMON_HASH_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace semshare {

// 64-bit FNV-1a: stable across platforms and releases (used in fingerprints and on disk),
// unlike absl::Hash, which is salted per process.
uint64_t Fnv1a64(absl::string_view data, uint64_t seed = 0xcbf29ce484222325ULL);

// Incremental form for hashing several pieces without concatenating them.
class StableHasher {
 public:
  void Update(absl::string_view data) { state_ = Fnv1a64(data, state_); }
  void UpdateU64(uint64_t value);
  uint64_t Digest() const { return state_; }
  std::string HexDigest() const;

 private:
  uint64_t state_ = 0xcbf29ce484222325ULL;
};

std::string ToHex64(uint64_t value);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_HASH_H_
