#include "common/hash.h"

#include "absl/strings/str_format.h"

namespace semshare {

uint64_t Fnv1a64(absl::string_view data, uint64_t seed) {
  uint64_t hash = seed;
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

void StableHasher::UpdateU64(uint64_t value) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  Update(absl::string_view(bytes, 8));
}

std::string StableHasher::HexDigest() const { return ToHex64(state_); }

std::string ToHex64(uint64_t value) { return absl::StrFormat("%016x", value); }

}  // namespace semshare
