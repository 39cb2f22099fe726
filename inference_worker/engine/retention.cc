#include "inference_worker/engine/retention.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/clock.h"
#include "inference_worker/engine/prefill_outcome.h"

namespace semshare {
namespace {

constexpr std::array<std::pair<RetentionPolicy, const char*>, 7> kPolicyNames = {{
    {RetentionPolicy::kNone, "none"},
    {RetentionPolicy::kExpDecay, "exp_decay"},
    {RetentionPolicy::kSnapKV, "snapkv"},
    {RetentionPolicy::kH2O, "h2o"},
    {RetentionPolicy::kStreaming, "streaming"},
    {RetentionPolicy::kPyramid, "pyramid"},
    {RetentionPolicy::kTova, "tova"},
}};

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Written as !(in range) so that NaN fails too.
absl::Status CheckShare(const char* name, double value) {
  if (!(value > 0.0 && value <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("retention ", name, " must be in (0, 1], got ", value));
  }
  return absl::OkStatus();
}

double LayerShare(const RetentionOptions& options, int64_t layer, int64_t num_layers) {
  switch (options.policy) {
    case RetentionPolicy::kNone:
      return 1.0;
    case RetentionPolicy::kExpDecay:
      return std::min(1.0,
                      std::max(options.r_min,
                               options.r0 * std::pow(options.gamma, static_cast<double>(layer))));
    case RetentionPolicy::kPyramid: {
      if (num_layers <= 1) return options.budget_share;
      const double b = options.budget_share;
      const double beta = std::max(1.0, options.pyramid_beta);
      // The widest spread PyramidKV's beta allows, narrowed so the first layer stays <= 1.
      const double half_spread = std::max(0.0, std::min(b - b / beta, 1.0 - b));
      const double depth = static_cast<double>(layer) / static_cast<double>(num_layers - 1);
      return (b + half_spread) - 2.0 * half_spread * depth;
    }
    case RetentionPolicy::kSnapKV:
    case RetentionPolicy::kH2O:
    case RetentionPolicy::kStreaming:
    case RetentionPolicy::kTova:
      return options.budget_share;
  }
  return 1.0;
}

// The tensor a policy ranks tokens by (higher is kept), NaN replaced by -inf so it ranks
// last. Undefined for policies that rank nothing (none, streaming).
at::Tensor PolicyScores(const RetentionOptions& options, const LayerAttentionStats& stats,
                        int64_t num_tokens, const at::Device& device) {
  at::Tensor raw;
  const char* name = "";
  switch (options.policy) {
    case RetentionPolicy::kNone:
    case RetentionPolicy::kStreaming:
      return at::Tensor();
    case RetentionPolicy::kExpDecay:
    case RetentionPolicy::kSnapKV:
    case RetentionPolicy::kPyramid:
      raw = stats.window_mass;
      name = "window_mass";
      break;
    case RetentionPolicy::kH2O:
      raw = stats.accumulated_mass;
      name = "accumulated_mass";
      break;
    case RetentionPolicy::kTova:
      raw = stats.last_query_mass;
      name = "last_query_mass";
      break;
  }
  TORCH_CHECK(raw.defined(), "retention policy ", RetentionPolicyName(options.policy),
              " needs stats.", name);
  TORCH_CHECK(raw.numel() == num_tokens, "stats.", name, " has ", raw.numel(),
              " elements, expected ", num_tokens);
  at::Tensor scores = raw.reshape({num_tokens}).to(device, at::kFloat);
  if (options.policy == RetentionPolicy::kSnapKV || options.policy == RetentionPolicy::kPyramid) {
    return SnapKVPool(scores, options.snapkv_pool_kernel);
  }
  return scores.masked_fill(scores.isnan(), kNegInf);
}

// Bool [num_tokens] on positions' device: sinks, the recent window and protected tokens.
at::Tensor ForcedMask(const RetentionOptions& options, const at::Tensor& positions,
                      const at::Tensor& protected_mask) {
  const int64_t n = positions.size(0);
  at::Tensor forced;
  if (protected_mask.defined()) {
    TORCH_CHECK(protected_mask.numel() == n, "protected_mask has ", protected_mask.numel(),
                " elements, expected ", n);
    // Copy: the caller's mask must not be written below.
    forced = protected_mask.reshape({n}).to(positions.device(), at::kBool, /*non_blocking=*/false,
                                            /*copy=*/true);
  } else {
    forced = at::zeros({n}, positions.options().dtype(at::kBool));
  }
  const int64_t sinks = std::clamp<int64_t>(options.sink_tokens, 0, n);
  const int64_t recent = std::clamp<int64_t>(options.recent_window, 0, n);
  if (sinks + recent == 0) return forced;
  // By position, not cache index: a reused layer's cache need not be in prompt order.
  // Stable so that equal positions resolve by index, the same on every device.
  const at::Tensor order = std::get<1>(at::sort(positions, c10::optional<bool>(true), /*dim=*/0));
  if (sinks > 0) forced.index_fill_(0, order.slice(0, 0, sinks), true);
  if (recent > 0) forced.index_fill_(0, order.slice(0, n - recent, n), true);
  return forced;
}

void CheckShapes(int64_t layer, int64_t num_layers, const at::Tensor& positions) {
  TORCH_CHECK(num_layers > 0 && layer >= 0 && layer < num_layers, "layer ", layer,
              " out of range for ", num_layers, " layers");
  TORCH_CHECK(positions.defined() && positions.dim() == 1, "positions must be 1-D");
}

}  // namespace

absl::StatusOr<RetentionPolicy> ParseRetentionPolicy(const std::string& name) {
  for (const auto& [policy, policy_name] : kPolicyNames) {
    if (name == policy_name) return policy;
  }
  std::vector<std::string> valid;
  valid.reserve(kPolicyNames.size());
  for (const auto& entry : kPolicyNames) valid.emplace_back(entry.second);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown retention policy \"", name, "\"; valid: ", absl::StrJoin(valid, ", ")));
}

std::string RetentionPolicyName(RetentionPolicy policy) {
  for (const auto& [candidate, name] : kPolicyNames) {
    if (candidate == policy) return name;
  }
  return "unknown";
}

absl::Status RetentionOptions::Validate() const {
  for (const auto& [name, value] : std::array<std::pair<const char*, double>, 4>{
           {{"r0", r0}, {"gamma", gamma}, {"r_min", r_min}, {"budget_share", budget_share}}}) {
    absl::Status status = CheckShare(name, value);
    if (!status.ok()) return status;
  }
  if (sink_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("retention sink_tokens must be >= 0, got ", sink_tokens));
  }
  if (recent_window < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("retention recent_window must be >= 0, got ", recent_window));
  }
  if (snapkv_pool_kernel < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("retention snapkv_pool_kernel must be >= 1 (1 disables pooling), got ",
                     snapkv_pool_kernel));
  }
  if (!(merge_min_similarity >= -1.0 && merge_min_similarity <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "retention merge_min_similarity must be in [-1, 1], got ", merge_min_similarity));
  }
  if (merge_window < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "retention merge_window must be >= 0 (0: all kept tokens), got ", merge_window));
  }
  if (!(pyramid_beta >= 1.0 && std::isfinite(pyramid_beta))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "retention pyramid_beta must be a finite number >= 1 (1 is uniform), got ", pyramid_beta));
  }
  return absl::OkStatus();
}

std::vector<double> RetentionShares(const RetentionOptions& options, int64_t num_layers) {
  std::vector<double> shares;
  shares.reserve(static_cast<size_t>(std::max<int64_t>(num_layers, 0)));
  for (int64_t layer = 0; layer < num_layers; ++layer) {
    shares.push_back(LayerShare(options, layer, num_layers));
  }
  return shares;
}

at::Tensor SnapKVPool(const at::Tensor& mass, int64_t kernel) {
  at::Tensor scores = mass.reshape({-1}).to(at::kFloat);
  scores = scores.masked_fill(scores.isnan(), kNegInf);
  if (kernel <= 1 || scores.numel() == 0) return scores;
  // Explicit -inf padding (max_pool1d's own is limited to kernel / 2 and symmetric) keeps
  // the output length equal for even kernels too.
  const int64_t before = (kernel - 1) / 2;
  const int64_t after = kernel / 2;
  at::Tensor padded = at::constant_pad_nd(scores.view({1, 1, -1}), {before, after}, kNegInf);
  return at::max_pool1d(padded, {kernel}, {1}).view({-1});
}

at::Tensor SelectRetainedTokens(const RetentionOptions& options, int64_t layer, int64_t num_layers,
                                const LayerAttentionStats& stats, const at::Tensor& positions,
                                const at::Tensor& protected_mask) {
  CheckShapes(layer, num_layers, positions);
  const int64_t n = positions.size(0);
  const at::TensorOptions index_options = positions.options().dtype(at::kLong);
  if (options.policy == RetentionPolicy::kNone || n == 0) return at::arange(n, index_options);

  const at::Tensor forced = ForcedMask(options, positions, protected_mask);
  at::Tensor scores = PolicyScores(options, stats, n, positions.device());

  const double share = LayerShare(options, layer, num_layers);
  // The epsilon keeps 0.55 * 100 = 55.000000000000007 from rounding up to 56.
  int64_t budget = static_cast<int64_t>(std::ceil(share * static_cast<double>(n) - 1e-9));
  const int64_t window = std::clamp<int64_t>(options.sink_tokens, 0, n) +
                         std::clamp<int64_t>(options.recent_window, 0, n);
  budget = std::clamp<int64_t>(std::max(budget, window), 0, n);

  const int64_t forced_count = forced.sum().item<int64_t>();
  const int64_t remaining = budget - forced_count;
  if (remaining <= 0 || !scores.defined()) return forced.nonzero().view({-1});

  // Rank only the free tokens, so forced ones never take a scored slot whatever their score.
  const at::Tensor candidates = forced.logical_not().nonzero().view({-1});
  // Stable descending sort: among equal scores the lower cache index comes first. at::topk
  // gives no such order.
  const at::Tensor order =
      std::get<1>(at::sort(scores.index_select(0, candidates), c10::optional<bool>(true), /*dim=*/0,
                           /*descending=*/true));
  const at::Tensor chosen = candidates.index_select(0, order.slice(0, 0, remaining));
  at::Tensor kept = forced.clone();
  kept.index_fill_(0, chosen, true);
  return kept.nonzero().view({-1});
}

int64_t SelectEvictionVictim(const RetentionOptions& options, const LayerAttentionStats& stats,
                             const at::Tensor& positions, const at::Tensor& protected_mask) {
  TORCH_CHECK(positions.defined() && positions.dim() == 1, "positions must be 1-D");
  const int64_t n = positions.size(0);
  if (options.policy == RetentionPolicy::kNone || n == 0) return -1;

  const at::Tensor candidates =
      ForcedMask(options, positions, protected_mask).logical_not().nonzero().view({-1});
  if (candidates.numel() == 0) return -1;

  at::Tensor scores = PolicyScores(options, stats, n, positions.device());
  // Streaming ranks nothing: the oldest free token is the one sliding out of the window.
  if (!scores.defined()) scores = positions.to(at::kDouble);
  // argmin returns the first minimum, so ties go to the lower index.
  const at::Tensor best = at::argmin(scores.index_select(0, candidates));
  return candidates.index_select(0, best.view({1})).item<int64_t>();
}

void KeepMerging(const RetentionOptions& options, const at::Tensor& keep,
                 const at::Tensor& window_mass, LayerKV* layer) {
  const int64_t n = layer->size();
  const int64_t m = keep.numel();
  if (!options.merge_evicted || m == 0 || m >= n) {
    layer->Keep(keep);
    return;
  }
  // Index bookkeeping on the host: one copy of `keep` instead of a sync per block.
  const at::Tensor keep_host = keep.to(at::kCPU, at::kLong).contiguous();
  const int64_t* kept = keep_host.data_ptr<int64_t>();
  const int64_t w = options.merge_window <= 0 ? m : std::min(m, options.merge_window);
  // Evicted tokens in cache (= position) order, and for each the first of its w candidates:
  // the kept tokens around it, the window shifted inside [0, m) at the ends.
  std::vector<int64_t> evicted_host;
  std::vector<int64_t> first_host;
  evicted_host.reserve(static_cast<size_t>(n - m));
  first_host.reserve(static_cast<size_t>(n - m));
  for (int64_t i = 0, next = 0; i < n; ++i) {
    if (next < m && kept[next] == i) {
      ++next;
      continue;
    }
    evicted_host.push_back(i);
    first_host.push_back(std::clamp<int64_t>(next - w / 2, 0, m - w));
  }
  // At most as many evicted tokens merge as are kept: those with the most window attention
  // (the rest would add little to any kept token), which bounds the work in deep layers.
  if (window_mass.defined() && static_cast<int64_t>(evicted_host.size()) > m) {
    const at::Tensor mass_host = window_mass.to(at::kCPU, at::kFloat).contiguous();
    const float* mass = mass_host.data_ptr<float>();
    std::vector<int64_t> order(evicted_host.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = static_cast<int64_t>(k);
    // Stable: among equal masses the earlier token merges, the same on every run.
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return mass[evicted_host[static_cast<size_t>(a)]] >
             mass[evicted_host[static_cast<size_t>(b)]];
    });
    order.resize(static_cast<size_t>(m));
    std::sort(order.begin(), order.end());
    std::vector<int64_t> merged_evicted;
    std::vector<int64_t> merged_first;
    for (int64_t k : order) {
      merged_evicted.push_back(evicted_host[static_cast<size_t>(k)]);
      merged_first.push_back(first_host[static_cast<size_t>(k)]);
    }
    evicted_host.swap(merged_evicted);
    first_host.swap(merged_first);
  }
  const int64_t e = static_cast<int64_t>(evicted_host.size());
  const at::Tensor evicted = at::tensor(evicted_host, at::kLong).to(keep.device());

  const at::Tensor all_keys = layer->k();
  const int64_t heads = all_keys.size(0);
  const auto unit = [](const at::Tensor& t) {
    const at::Tensor f = t.to(at::kFloat);
    return f / f.norm(2, -1, /*keepdim=*/true).clamp_min(1e-12);
  };
  const at::Tensor kept_unit = unit(all_keys.index_select(1, keep));        // [h, m, hd]
  const at::Tensor evicted_unit = unit(all_keys.index_select(1, evicted));  // [h, e, hd]
  const int64_t hd = all_keys.size(2);
  at::Tensor best_sim;
  at::Tensor best;  // [h, e], index into keep
  if (w >= m) {
    // Every kept token is a candidate: one matmul.
    std::tie(best_sim, best) = at::matmul(evicted_unit, kept_unit.transpose(1, 2)).max(-1);
  } else {
    // Blocks of up to kBlock consecutive evicted tokens whose candidates lie in one range of at
    // most max_span kept tokens, so all blocks are one batched matmul against their ranges
    // (padded to the widest), the columns outside each row's window masked. A block ends early
    // where its evicted tokens lie far apart: one long run of kept tokens between two evicted
    // ones would otherwise widen every block (it made the search 35 ms of a layer at 5,120
    // tokens). Rows past a block's last evicted token repeat it and are not read back.
    constexpr int64_t kBlock = 16;
    const int64_t max_span = w + 4 * kBlock;
    std::vector<int64_t> block_start;  // the first evicted row of each block, then e
    for (int64_t row = 0; row < e; ++row) {
      if (block_start.empty() || row - block_start.back() == kBlock ||
          first_host[static_cast<size_t>(row)] + w -
                  first_host[static_cast<size_t>(block_start.back())] >
              max_span) {
        block_start.push_back(row);
      }
    }
    const int64_t blocks = static_cast<int64_t>(block_start.size());
    block_start.push_back(e);
    int64_t span = 0;
    for (int64_t b = 0; b < blocks; ++b) {
      span = std::max(span, first_host[static_cast<size_t>(block_start[b + 1] - 1)] + w -
                                first_host[static_cast<size_t>(block_start[b])]);
    }
    std::vector<int64_t> rows_host(static_cast<size_t>(blocks * kBlock));
    std::vector<int64_t> row_first_host(rows_host.size());
    std::vector<int64_t> slots_host(static_cast<size_t>(e));  // each evicted row's block slot
    std::vector<int64_t> columns_host(static_cast<size_t>(blocks * span));
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t begin = block_start[static_cast<size_t>(b)];
      const int64_t end = block_start[static_cast<size_t>(b + 1)];
      for (int64_t r = 0; r < kBlock; ++r) {
        const int64_t row = std::min(begin + r, end - 1);
        rows_host[static_cast<size_t>(b * kBlock + r)] = row;
        row_first_host[static_cast<size_t>(b * kBlock + r)] = first_host[static_cast<size_t>(row)];
        if (begin + r < end) slots_host[static_cast<size_t>(begin + r)] = b * kBlock + r;
      }
      const int64_t lo = first_host[static_cast<size_t>(begin)];
      for (int64_t j = 0; j < span; ++j) columns_host[static_cast<size_t>(b * span + j)] = lo + j;
    }
    const at::Tensor rows = at::tensor(rows_host, at::kLong).to(keep.device());
    // Unclamped, for the mask; clamped into [0, m) for the gather.
    const at::Tensor columns =
        at::tensor(columns_host, at::kLong).to(keep.device()).view({blocks, span});
    const at::Tensor gathered = columns.clamp_max(m - 1);
    const at::Tensor block_keys =
        kept_unit.index_select(1, gathered.view({-1})).view({heads, blocks, span, hd});
    const at::Tensor block_rows =
        evicted_unit.index_select(1, rows).view({heads, blocks, kBlock, hd});
    at::Tensor sim = at::matmul(block_rows, block_keys.transpose(2, 3));  // [h, blocks, B, span]
    const at::Tensor row_first =
        at::tensor(row_first_host, at::kLong).to(keep.device()).view({blocks, kBlock, 1});
    const at::Tensor column = columns.unsqueeze(1);  // [blocks, 1, span]
    sim.masked_fill_((column < row_first).logical_or(column >= row_first + w),
                     -std::numeric_limits<float>::infinity());
    const auto [block_sim, block_arg] = sim.max(-1);  // [h, blocks, B]
    const at::Tensor slots = at::tensor(slots_host, at::kLong).to(keep.device());
    best_sim = block_sim.reshape({heads, blocks * kBlock}).index_select(1, slots);
    best = gathered.unsqueeze(0)
               .expand({heads, blocks, span})
               .gather(2, block_arg)
               .reshape({heads, blocks * kBlock})
               .index_select(1, slots);  // index into keep
  }

  at::Tensor rho = (best_sim >= options.merge_min_similarity).to(at::kFloat);  // [h, e]
  if (window_mass.defined()) {
    const at::Tensor mass = window_mass.to(keep.device(), at::kFloat).clamp_min(1e-12);
    const at::Tensor evicted_mass = mass.index_select(0, evicted).unsqueeze(0);  // [1, e]
    const at::Tensor kept_mass =
        mass.index_select(0, keep).index_select(0, best.reshape({-1})).view({heads, e});
    rho.mul_((evicted_mass / kept_mass).clamp_max(1.0));
  }
  const at::Tensor added = at::zeros({heads, m}, rho.options()).scatter_add_(1, best, rho);
  at::Tensor values = layer->v().index_select(1, keep).to(at::kFloat);  // [h, m, hd]
  values.scatter_add_(1, best.unsqueeze(-1).expand({heads, e, hd}),
                      layer->v().index_select(1, evicted).to(at::kFloat) * rho.unsqueeze(-1));
  values.div_((1 + added).unsqueeze(-1));
  at::Tensor bias = at::log1p(added);
  if (layer->bias().defined()) bias.add_(layer->bias().index_select(1, keep));
  layer->Keep(keep);
  layer->v().copy_(values);  // v() views the layer's storage
  layer->SetBias(bias);
}

void KeepStats(const at::Tensor& keep, LayerAttentionStats* stats) {
  for (at::Tensor* t : stats->tensors()) {
    if (t->defined()) *t = t->index_select(0, keep);
  }
}

void ApplyRetention(const RetentionOptions& options,
                    const std::vector<std::vector<uint8_t>>& protect, PrefillOutcome* out) {
  const auto start = SteadyClock::now();
  const int64_t num_layers = static_cast<int64_t>(out->cache.layers.size());
  const int64_t n = out->prompt_tokens;
  out->layer_budgets.assign(static_cast<size_t>(num_layers), n);
  if (options.policy != RetentionPolicy::kNone) {
    for (int64_t l = 0; l < num_layers; ++l) {
      LayerKV& layer = out->cache.layers[static_cast<size_t>(l)];
      const at::Device device = layer.k().device();
      at::Tensor protected_mask;
      if (!protect.empty() && !protect[static_cast<size_t>(l)].empty()) {
        const auto& p = protect[static_cast<size_t>(l)];
        protected_mask = at::tensor(std::vector<int64_t>(p.begin(), p.end()), at::kLong)
                             .to(device)
                             .to(at::kBool);
      }
      LayerAttentionStats& stats = out->stats[static_cast<size_t>(l)];
      const at::Tensor keep =
          SelectRetainedTokens(options, l, num_layers, stats, layer.positions(), protected_mask)
              .to(device);
      KeepMerging(options, keep, stats.window_mass, &layer);
      KeepStats(keep, &stats);
      out->layer_budgets[static_cast<size_t>(l)] = layer.size();
    }
  }
  out->kv_kept_share = static_cast<double>(out->cache.token_layers()) /
                       static_cast<double>(std::max<int64_t>(1, n * num_layers));
  out->times.retention_ms = MillisSince(start);
}

void EvictForDecode(const RetentionOptions& options, PrefillOutcome* prefill) {
  if (options.policy == RetentionPolicy::kNone || !options.decode_eviction) return;
  for (size_t l = 0; l < prefill->cache.layers.size(); ++l) {
    LayerKV& layer = prefill->cache.layers[l];
    if (layer.size() <= prefill->layer_budgets[l]) continue;
    LayerAttentionStats& stats = prefill->stats[l];
    const int64_t victim = SelectEvictionVictim(options, stats, layer.positions(), at::Tensor());
    if (victim < 0) continue;
    const at::Tensor all =
        at::arange(layer.size(), at::TensorOptions().dtype(at::kLong).device(layer.k().device()));
    const at::Tensor keep = all.masked_select(all != victim);
    layer.Keep(keep);
    KeepStats(keep, &stats);
  }
}

}  // namespace semshare
