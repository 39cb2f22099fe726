#include "common/token_mapping.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <random>
#include <thread>

#if defined(__x86_64__)
// GCC 12 reports false maybe-uninitialized warnings inside its own AVX-512 headers.
#if defined(__clang__)
#include <immintrin.h>
#else
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
#endif

#include "absl/strings/str_cat.h"

namespace semshare {
namespace {

// The nearest-code scan is the engine's and the cache node's hottest pure loop (N x M x
// words). Each candidate is folded into one integer key, (distance, |j - i|, j > i), whose
// minimum is exactly the sequential rule "nearest code, ties to the nearest position, then
// to the earlier one": no data-dependent branch, so it runs at popcount speed, and the same
// key lets AVX-512 compare eight reference tokens at once.
inline uint64_t CandidateKey(int32_t distance, int64_t i, int64_t j) {
  const uint64_t offset = static_cast<uint64_t>(j > i ? j - i : i - j);
  return (static_cast<uint64_t>(distance) << 33) | (offset << 1) | (j > i ? 1 : 0);
}

inline void StoreBest(uint64_t key, int64_t i, int32_t* best_j, int32_t* best_d) {
  const auto offset = static_cast<int64_t>((key >> 1) & 0xffffffffULL);
  best_j[i] = static_cast<int32_t>((key & 1) ? i + offset : i - offset);
  best_d[i] = static_cast<int32_t>(key >> 33);
}

struct ScanInput {
  const TokenCodes* target;
  const TokenCodes* reference;
  // Word-major copy of the reference codes (word w of token j at [w * m + j]) for the
  // vector path; empty otherwise.
  std::vector<uint64_t> transposed;
};

template <int kWords>
__attribute__((always_inline)) inline void ScanRangeFixed(const ScanInput& in, int64_t begin,
                                                          int64_t end, int32_t* best_j,
                                                          int32_t* best_d) {
  const int64_t m = in.reference->size();
  const uint64_t* ref = in.reference->words.data();
  for (int64_t i = begin; i < end; ++i) {
    const uint64_t* t = in.target->code(i);
    uint64_t best = std::numeric_limits<uint64_t>::max();
    for (int64_t j = 0; j < m; ++j) {
      int32_t d = 0;
      for (int w = 0; w < kWords; ++w) d += __builtin_popcountll(t[w] ^ ref[j * kWords + w]);
      best = std::min(best, CandidateKey(d, i, j));
    }
    StoreBest(best, i, best_j, best_d);
  }
}

void ScanRangeGeneric(const ScanInput& in, int64_t begin, int64_t end, int32_t* best_j,
                      int32_t* best_d) {
  const int64_t m = in.reference->size();
  const int32_t words = in.target->words_per_code();
  for (int64_t i = begin; i < end; ++i) {
    uint64_t best = std::numeric_limits<uint64_t>::max();
    for (int64_t j = 0; j < m; ++j) {
      const int32_t d = HammingDistance(in.target->code(i), in.reference->code(j), words);
      best = std::min(best, CandidateKey(d, i, j));
    }
    StoreBest(best, i, best_j, best_d);
  }
}

using ScanFn = void (*)(const ScanInput&, int64_t, int64_t, int32_t*, int32_t*);

#define SEMSHARE_POPCNT_SCAN(words)                                        \
  __attribute__((target("popcnt"))) void ScanRange##words##Popcnt(         \
      const ScanInput& in, int64_t b, int64_t e, int32_t* j, int32_t* d) { \
    ScanRangeFixed<words>(in, b, e, j, d);                                 \
  }
SEMSHARE_POPCNT_SCAN(2)
SEMSHARE_POPCNT_SCAN(4)
SEMSHARE_POPCNT_SCAN(8)
#undef SEMSHARE_POPCNT_SCAN

#if defined(__x86_64__)
// Eight reference tokens per step: XOR + VPOPCNTQ per word, keys as above, unsigned min.
// kWords > 0 fixes the code width at compile time (target words stay in registers).
template <int kWords>
__attribute__((target("avx512f,avx512vpopcntdq"), always_inline)) inline void ScanAvx512(
    const ScanInput& in, int64_t begin, int64_t end, int32_t* best_j, int32_t* best_d) {
  const int64_t m = in.reference->size();
  const int32_t words = kWords > 0 ? kWords : in.target->words_per_code();
  const uint64_t* tr = in.transposed.data();
  const __m512i one = _mm512_set1_epi64(1);
  const __m512i all = _mm512_set1_epi64(-1);
  const __m512i step = _mm512_set1_epi64(8);
  for (int64_t i = begin; i < end; ++i) {
    const uint64_t* t = in.target->code(i);
    const __m512i vi = _mm512_set1_epi64(i);
    __m512i vj = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
    __m512i best = all;
    for (int64_t j0 = 0; j0 < m; j0 += 8, vj = _mm512_add_epi64(vj, step)) {
      const __mmask8 valid = m - j0 >= 8 ? 0xff : static_cast<__mmask8>((1u << (m - j0)) - 1);
      __m512i d = _mm512_setzero_si512();
      for (int32_t w = 0; w < words; ++w) {
        const __m512i r = _mm512_maskz_loadu_epi64(valid, tr + w * m + j0);
        const __m512i x = _mm512_xor_si512(r, _mm512_set1_epi64(static_cast<int64_t>(t[w])));
        d = _mm512_add_epi64(d, _mm512_popcnt_epi64(x));
      }
      const __mmask8 after = _mm512_cmpgt_epi64_mask(vj, vi);
      const __m512i offset = _mm512_abs_epi64(_mm512_sub_epi64(vj, vi));
      __m512i key = _mm512_or_si512(_mm512_slli_epi64(d, 33), _mm512_slli_epi64(offset, 1));
      key = _mm512_mask_or_epi64(key, after, key, one);
      best = _mm512_min_epu64(best, _mm512_mask_mov_epi64(all, valid, key));
    }
    StoreBest(_mm512_reduce_min_epu64(best), i, best_j, best_d);
  }
}

__attribute__((target("avx512f,avx512vpopcntdq"))) void ScanRangeAvx512W4(
    const ScanInput& in, int64_t begin, int64_t end, int32_t* best_j, int32_t* best_d) {
  ScanAvx512<4>(in, begin, end, best_j, best_d);
}

__attribute__((target("avx512f,avx512vpopcntdq"))) void ScanRangeAvx512(const ScanInput& in,
                                                                        int64_t begin, int64_t end,
                                                                        int32_t* best_j,
                                                                        int32_t* best_d) {
  ScanAvx512<0>(in, begin, end, best_j, best_d);
}

bool HasAvx512Popcount() {
  static const bool has =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
  return has;
}
#endif

ScanFn ChooseScan(ScanInput* in) {
#if defined(__x86_64__)
  if (HasAvx512Popcount()) {
    const int64_t m = in->reference->size();
    const int32_t words = in->reference->words_per_code();
    in->transposed.resize(static_cast<size_t>(m * words));
    for (int64_t j = 0; j < m; ++j) {
      for (int32_t w = 0; w < words; ++w) in->transposed[w * m + j] = in->reference->code(j)[w];
    }
    return words == 4 ? ScanRangeAvx512W4 : ScanRangeAvx512;
  }
#endif
  const int32_t words = in->target->words_per_code();
  const bool popcnt = __builtin_cpu_supports("popcnt");
  if (popcnt && words == 4) return ScanRange4Popcnt;
  if (popcnt && words == 2) return ScanRange2Popcnt;
  if (popcnt && words == 8) return ScanRange8Popcnt;
  return ScanRangeGeneric;
}

}  // namespace

absl::StatusOr<MappingMode> ParseMappingMode(const std::string& name) {
  if (name == "nearest") return MappingMode::kNearest;
  if (name == "random") return MappingMode::kRandom;
  return absl::InvalidArgumentError(
      absl::StrCat("mapping '", name, "' is not one of nearest, random"));
}

absl::Status MappingOptions::Validate() const {
  if (!(distance_norm > 0)) return absl::InvalidArgumentError("distance_norm must be > 0");
  if (unmatched_radius < 0) return absl::InvalidArgumentError("unmatched_radius must be >= 0");
  return absl::OkStatus();
}

int32_t HammingDistance(const uint64_t* a, const uint64_t* b, int32_t words) {
  int32_t d = 0;
  for (int32_t w = 0; w < words; ++w) d += __builtin_popcountll(a[w] ^ b[w]);
  return d;
}

absl::StatusOr<TokenMapping> MapTokens(const TokenCodes& target, const TokenCodes& reference,
                                       const MappingOptions& options) {
  absl::Status valid = options.Validate();
  if (!valid.ok()) return valid;
  if (target.nbits != reference.nbits) {
    return absl::InvalidArgumentError(absl::StrCat("code widths differ: target ", target.nbits,
                                                   " bits, reference ", reference.nbits));
  }
  const int64_t n = target.size();
  const int64_t m = reference.size();
  if (n == 0 || m == 0) return absl::InvalidArgumentError("cannot map an empty prompt");

  TokenMapping mapping;
  mapping.source.assign(static_cast<size_t>(n), 0);
  mapping.distance.assign(static_cast<size_t>(n), 0);
  const int32_t words = target.words_per_code();
  if (options.mode == MappingMode::kRandom) {
    std::mt19937_64 rng(options.random_seed);
    for (int64_t i = 0; i < n; ++i) {
      const int32_t j = static_cast<int32_t>(rng() % static_cast<uint64_t>(m));
      mapping.source[i] = j;
      mapping.distance[i] = HammingDistance(target.code(i), reference.code(j), words);
    }
  } else {
    ScanInput input{&target, &reference, {}};
    const ScanFn scan = ChooseScan(&input);
    // Split the target rows over threads only when each gets enough work to pay for a thread.
    const int64_t hardware = std::max(1u, std::thread::hardware_concurrency());
    const int64_t wanted = options.num_threads > 0 ? options.num_threads : hardware;
    const int64_t threads = std::clamp<int64_t>(n * m / (1 << 20), 1, std::min(wanted, n));
    std::vector<std::thread> workers;
    const int64_t per = (n + threads - 1) / threads;
    for (int64_t t = 1; t < threads; ++t) {
      workers.emplace_back(scan, std::cref(input), t * per, std::min(n, (t + 1) * per),
                           mapping.source.data(), mapping.distance.data());
    }
    scan(input, 0, std::min(n, per), mapping.source.data(), mapping.distance.data());
    for (std::thread& w : workers) w.join();
  }

  mapping.unmatched.assign(static_cast<size_t>(n), 0);
  double normalised_sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    normalised_sum += std::min(1.0, mapping.distance[i] / options.distance_norm);
    if (mapping.distance[i] > options.unmatched_radius) {
      mapping.unmatched[i] = 1;
      ++mapping.num_unmatched;
    }
  }
  mapping.similarity = std::clamp(1.0 - normalised_sum / static_cast<double>(n), 0.0, 1.0);
  return mapping;
}

}  // namespace semshare
