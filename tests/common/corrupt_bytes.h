#ifndef SEMSHARE_TESTS_COMMON_CORRUPT_BYTES_H_
#define SEMSHARE_TESTS_COMMON_CORRUPT_BYTES_H_

#include <cstddef>
#include <random>
#include <string>

namespace semshare {

// Trial `trial` of a corruption test: overwrites 1 + trial % 4 bytes at random positions of
// (*bytes)[0, span). Two trials in three write printable bytes, which more often keep a JSON
// document parsable and so reach the checks behind the parser; the third writes any byte.
inline void CorruptBytes(int trial, size_t span, std::mt19937* rng, std::string* bytes) {
  for (int flips = 0; flips < 1 + trial % 4; ++flips) {
    const char byte =
        static_cast<char>(trial % 3 == 0 ? (*rng)() : ' ' + static_cast<int>((*rng)() % 95));
    (*bytes)[(*rng)() % span] = byte;
  }
}

}  // namespace semshare

#endif  // SEMSHARE_TESTS_COMMON_CORRUPT_BYTES_H_
