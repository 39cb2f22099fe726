#include "common/token_mapping.h"

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
