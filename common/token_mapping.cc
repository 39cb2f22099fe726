#include "common/token_mapping.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"

namespace semshare {
namespace {

// The nearest-code scan is the engine's hottest pure loop (N x M x words); with the popcnt
// instruction it is several times faster than the portable fallback, so pick at run time.
template <int kWords>
__attribute__((always_inline)) inline int32_t DistanceFixed(const uint64_t* a, const uint64_t* b) {
  int32_t d = 0;
  for (int w = 0; w < kWords; ++w) d += __builtin_popcountll(a[w] ^ b[w]);
  return d;
}

template <int kWords>
void ScanRange(const TokenCodes& target, const TokenCodes& reference, int64_t begin, int64_t end,
               int32_t* best_j, int32_t* best_d) {
  const int64_t m = reference.size();
  const uint64_t* ref = reference.words.data();
  for (int64_t i = begin; i < end; ++i) {
    const uint64_t* t = target.code(i);
    int32_t bd = std::numeric_limits<int32_t>::max();
    int64_t bj = 0;
    for (int64_t j = 0; j < m; ++j) {
      const int32_t d = DistanceFixed<kWords>(t, ref + j * kWords);
      if (d < bd || (d == bd && std::llabs(j - i) < std::llabs(bj - i))) {
        bd = d;
        bj = j;
      }
    }
    best_j[i] = static_cast<int32_t>(bj);
    best_d[i] = bd;
  }
}

void ScanRangeGeneric(const TokenCodes& target, const TokenCodes& reference, int64_t begin,
                      int64_t end, int32_t* best_j, int32_t* best_d) {
  const int64_t m = reference.size();
  const int32_t words = target.words_per_code();
  for (int64_t i = begin; i < end; ++i) {
    int32_t bd = std::numeric_limits<int32_t>::max();
    int64_t bj = 0;
    for (int64_t j = 0; j < m; ++j) {
      const int32_t d = HammingDistance(target.code(i), reference.code(j), words);
      if (d < bd || (d == bd && std::llabs(j - i) < std::llabs(bj - i))) {
        bd = d;
        bj = j;
      }
    }
    best_j[i] = static_cast<int32_t>(bj);
    best_d[i] = bd;
  }
}

using ScanFn = void (*)(const TokenCodes&, const TokenCodes&, int64_t, int64_t, int32_t*, int32_t*);

// GCC 12 flags the intrinsics' internal _mm512_undefined sources as maybe-uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// AVX-512 with VPOPCNTDQ: eight reference codes per step from a word-major (transposed) copy
// of the reference codes. Each lane keeps its own best under the scalar scan's order (smaller
// distance, then nearer position, then the earlier token); the lanes are merged the same way,
// so the result is identical to ScanRangeGeneric.
__attribute__((target("avx512f,avx512vpopcntdq"))) void ScanRangeAvx512(
    const TokenCodes& target, const TokenCodes& reference, int64_t begin, int64_t end,
    int32_t* best_j, int32_t* best_d) {
  const int64_t m = reference.size();
  const int32_t words = target.words_per_code();
  const int64_t blocks = m / 8;
  std::vector<uint64_t> transposed(static_cast<size_t>(blocks * 8 * words));
  for (int64_t b = 0; b < blocks; ++b) {
    for (int32_t w = 0; w < words; ++w) {
      for (int64_t lane = 0; lane < 8; ++lane) {
        transposed[static_cast<size_t>((b * words + w) * 8 + lane)] = reference.code(b * 8 + lane)[w];
      }
    }
  }
  const __m512i lane_index = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  for (int64_t i = begin; i < end; ++i) {
    const uint64_t* t = target.code(i);
    const __m512i position = _mm512_set1_epi64(i);
    __m512i bd = _mm512_set1_epi64(std::numeric_limits<int64_t>::max());
    __m512i bj = _mm512_setzero_si512();
    __m512i bgap = _mm512_set1_epi64(std::numeric_limits<int64_t>::max());
    for (int64_t b = 0; b < blocks; ++b) {
      const uint64_t* block = transposed.data() + b * words * 8;
      __m512i d = _mm512_setzero_si512();
      for (int32_t w = 0; w < words; ++w) {
        const __m512i x = _mm512_xor_si512(_mm512_loadu_si512(block + w * 8),
                                           _mm512_set1_epi64(static_cast<int64_t>(t[w])));
        d = _mm512_add_epi64(d, _mm512_popcnt_epi64(x));
      }
      const __m512i j = _mm512_add_epi64(_mm512_set1_epi64(b * 8), lane_index);
      const __m512i gap = _mm512_abs_epi64(_mm512_sub_epi64(j, position));
      const __mmask8 better = _mm512_cmplt_epi64_mask(d, bd) |
                              (_mm512_cmpeq_epi64_mask(d, bd) & _mm512_cmplt_epi64_mask(gap, bgap));
      bd = _mm512_mask_mov_epi64(bd, better, d);
      bj = _mm512_mask_mov_epi64(bj, better, j);
      bgap = _mm512_mask_mov_epi64(bgap, better, gap);
    }
    alignas(64) int64_t lane_d[8];
    alignas(64) int64_t lane_j[8];
    _mm512_store_si512(lane_d, bd);
    _mm512_store_si512(lane_j, bj);
    int64_t best = std::numeric_limits<int64_t>::max();
    int64_t best_index = 0;
    auto consider = [&](int64_t d, int64_t j) {
      const int64_t gap = std::llabs(j - i);
      const int64_t best_gap = std::llabs(best_index - i);
      if (d < best || (d == best && (gap < best_gap || (gap == best_gap && j < best_index)))) {
        best = d;
        best_index = j;
      }
    };
    if (blocks > 0) {
      for (int lane = 0; lane < 8; ++lane) consider(lane_d[lane], lane_j[lane]);
    }
    for (int64_t j = blocks * 8; j < m; ++j) consider(HammingDistance(t, reference.code(j), words), j);
    best_j[i] = static_cast<int32_t>(best_index);
    best_d[i] = static_cast<int32_t>(best);
  }
}
#pragma GCC diagnostic pop

__attribute__((target("popcnt"))) void ScanRange4Popcnt(const TokenCodes& t, const TokenCodes& r,
                                                         int64_t b, int64_t e, int32_t* j, int32_t* d) {
  ScanRange<4>(t, r, b, e, j, d);
}
__attribute__((target("popcnt"))) void ScanRange2Popcnt(const TokenCodes& t, const TokenCodes& r,
                                                         int64_t b, int64_t e, int32_t* j, int32_t* d) {
  ScanRange<2>(t, r, b, e, j, d);
}
__attribute__((target("popcnt"))) void ScanRange8Popcnt(const TokenCodes& t, const TokenCodes& r,
                                                         int64_t b, int64_t e, int32_t* j, int32_t* d) {
  ScanRange<8>(t, r, b, e, j, d);
}

ScanFn ChooseScan(int32_t words) {
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq")) {
    return ScanRangeAvx512;
  }
  const bool popcnt = __builtin_cpu_supports("popcnt");
  if (popcnt && words == 4) return ScanRange4Popcnt;
  if (popcnt && words == 2) return ScanRange2Popcnt;
  if (popcnt && words == 8) return ScanRange8Popcnt;
  if (words == 4) return ScanRange<4>;
  return ScanRangeGeneric;
}

}  // namespace

absl::StatusOr<MappingMode> ParseMappingMode(const std::string& name) {
  if (name == "nearest") return MappingMode::kNearest;
  if (name == "random") return MappingMode::kRandom;
  return absl::InvalidArgumentError(absl::StrCat("mapping '", name, "' is not one of nearest, random"));
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
    const ScanFn scan = ChooseScan(words);
    // Split the target rows over threads only when each gets enough work to pay for a thread.
    const int64_t hardware = std::max(1u, std::thread::hardware_concurrency());
    const int64_t wanted = options.num_threads > 0 ? options.num_threads : hardware;
    const int64_t threads = std::clamp<int64_t>(n * m / (1 << 20), 1, std::min(wanted, n));
    std::vector<std::thread> workers;
    const int64_t per = (n + threads - 1) / threads;
    for (int64_t t = 1; t < threads; ++t) {
      workers.emplace_back(scan, std::cref(target), std::cref(reference), t * per,
                           std::min(n, (t + 1) * per), mapping.source.data(), mapping.distance.data());
    }
    scan(target, reference, 0, std::min(n, per), mapping.source.data(), mapping.distance.data());
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
