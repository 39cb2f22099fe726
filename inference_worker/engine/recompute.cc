#include "inference_worker/engine/recompute.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace semshare {

absl::Status RecomputeOptions::Validate() const {
  if (!(hd_share >= 0 && hd_share <= 1))
    return absl::InvalidArgumentError("hd_share must be in [0, 1]");
  if (!(decay > 0 && decay <= 1))
    return absl::InvalidArgumentError("recompute decay must be in (0, 1]");
  if (!(min_share >= 0 && min_share <= 1))
    return absl::InvalidArgumentError("min_share must be in [0, 1]");
  if (last_tokens < 1) return absl::InvalidArgumentError("last_tokens must be >= 1");
  return absl::OkStatus();
}

std::vector<double> RecomputeShares(const RecomputeOptions& options, int64_t num_layers) {
  std::vector<double> shares;
  shares.reserve(static_cast<size_t>(num_layers));
  double previous = 1.0;
  for (int64_t l = 0; l < num_layers; ++l) {
    double share = 1.0;
    if (l > 0) {
      share = std::max(std::min(options.min_share, options.hd_share),
                       options.hd_share * std::pow(options.decay, static_cast<double>(l - 1)));
    }
    share = std::min(share, previous);
    shares.push_back(share);
    previous = share;
  }
  return shares;
}

std::vector<int64_t> ShrinkRecomputeSet(const std::vector<int64_t>& current,
                                        const std::vector<float>& deviation,
                                        const std::vector<uint8_t>& must_keep,
                                        int64_t target_count) {
  const size_t n = current.size();
  std::vector<uint8_t> keep(n, 0);
  int64_t kept = 0;
  std::vector<size_t> candidates;
  for (size_t k = 0; k < n; ++k) {
    if (must_keep[k]) {
      keep[k] = 1;
      ++kept;
    } else {
      candidates.push_back(k);
    }
  }
  const int64_t room =
      std::max<int64_t>(0, std::min<int64_t>(target_count, static_cast<int64_t>(n)) - kept);
  const size_t take = std::min(candidates.size(), static_cast<size_t>(room));
  std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(take),
                    candidates.end(), [&](size_t a, size_t b) {
                      if (deviation[a] != deviation[b]) return deviation[a] > deviation[b];
                      return a < b;
                    });
  for (size_t c = 0; c < take; ++c) keep[candidates[c]] = 1;
  std::vector<int64_t> next;
  for (size_t k = 0; k < n; ++k) {
    if (keep[k]) next.push_back(current[k]);
  }
  return next;
}

}  // namespace semshare
