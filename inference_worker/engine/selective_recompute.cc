#include "inference_worker/engine/selective_recompute.h"

#include <ATen/ATen.h>

#include <cmath>
#include <utility>

#include "common/clock.h"
#include "inference_worker/engine/recompute.h"

namespace semshare {
namespace {

at::Tensor IndexTensor(const std::vector<int64_t>& indices, at::Device device) {
  return at::tensor(indices, at::kLong).to(device);
}

// Waits for queued device work so stage timings mean something on CUDA.
void Sync(const at::Tensor& t) {
  if (t.defined() && t.is_cuda()) (void)t.sum().item<float>();
}

}  // namespace

SelectiveRecompute::SelectiveRecompute(const Model* model, at::Tensor embeddings,
                                       const TokenMapping& mapping, const ReuseOptions& options,
                                       PrefillOutcome* out)
    : model_(model),
      options_(options),
      out_(out),
      n_(out->prompt_tokens),
      window_start_(out->prompt_tokens - options.observation_window),
      // Queries whose attention feeds the retention stats: the observation window, or every
      // computed query for H2O's accumulated mass.
      stats_from_every_query_(options.retention.policy == RetentionPolicy::kH2O),
      shares_(RecomputeShares(options.recompute, model->num_layers())),
      must_keep_(static_cast<size_t>(out->prompt_tokens), 0),
      current_(static_cast<size_t>(out->prompt_tokens)),
      recomputed_(static_cast<size_t>(model->num_layers())),
      hidden_(std::move(embeddings)) {
  out_->method = "semshare";
  out_->hit = true;
  out_->unmatched_tokens = mapping.num_unmatched;
  for (int64_t i = 0; i < n_; ++i) {
    must_keep_[i] = mapping.unmatched[i] || i >= n_ - options.recompute.last_tokens;
    current_[i] = i;
  }
  out_->stats.assign(static_cast<size_t>(model->num_layers()), LayerAttentionStats{});
}

void SelectiveRecompute::StepLayer() {
  const auto start = SteadyClock::now();
  const int64_t l = layer_;
  const int64_t num_layers = model_->num_layers();
  const at::Device device = model_->device();
  LayerKV& layer = out_->cache.layers[static_cast<size_t>(l)];
  const at::Tensor index = IndexTensor(current_, device);
  const at::Tensor reused_k = layer.k().index_select(1, index).to(at::kFloat);
  const at::Tensor reused_v = layer.v().index_select(1, index).to(at::kFloat);
  const Model::PendingLayer pending = model_->WriteLayerKV(l, hidden_, index, &layer, index);
  if (l > 0) recomputed_after_layer0_ += static_cast<int64_t>(current_.size());
  auto& mask = recomputed_[static_cast<size_t>(l)];
  mask.assign(static_cast<size_t>(n_), 0);
  for (int64_t i : current_) mask[i] = 1;

  std::vector<int64_t> next;
  if (l + 1 < num_layers) {
    // Deviation of fresh from reused KV ranks which tokens stay in the set for the next layer.
    const at::Tensor dk = (layer.k().index_select(1, index).to(at::kFloat) - reused_k)
                              .pow(2)
                              .sum(at::IntArrayRef{0, 2})
                              .sqrt();
    const at::Tensor dv = (layer.v().index_select(1, index).to(at::kFloat) - reused_v)
                              .pow(2)
                              .sum(at::IntArrayRef{0, 2})
                              .sqrt();
    const at::Tensor deviation_tensor = (dk + dv).to(at::kCPU).contiguous();
    const float* dev = deviation_tensor.data_ptr<float>();
    const std::vector<float> deviation(dev, dev + current_.size());
    std::vector<uint8_t> keep(current_.size());
    for (size_t k = 0; k < current_.size(); ++k) keep[k] = must_keep_[current_[k]];
    const int64_t target_count =
        static_cast<int64_t>(std::ceil(shares_[l + 1] * static_cast<double>(n_)));
    next = ShrinkRecomputeSet(current_, deviation, keep, target_count);
  } else {
    next = {n_ - 1};  // only the last token's output is read: its logits are the first output
  }

  // The set only shrinks, so the outputs of tokens leaving it are never read: run the
  // queries, attention and MLP of the tokens that stay (and of the stats' queries) only.
  std::vector<int64_t> rows;       // into `current_`
  std::vector<int64_t> next_rows;  // into `rows`
  size_t r = 0;
  for (size_t k = 0; k < current_.size(); ++k) {
    const bool stays = r < next.size() && next[r] == current_[k];
    if (stays) ++r;
    if (!stays && !stats_from_every_query_ && current_[k] < window_start_) continue;
    if (stays) next_rows.push_back(static_cast<int64_t>(rows.size()));
    rows.push_back(static_cast<int64_t>(k));
  }
  AttentionStatsRequest request{&out_->stats[static_cast<size_t>(l)], window_start_,
                                stats_from_every_query_};
  const at::Tensor finished = model_->FinishLayer(
      pending, rows.size() == current_.size() ? at::Tensor() : IndexTensor(rows, device), layer,
      request);
  computed_ += static_cast<int64_t>(rows.size());
  hidden_ = next_rows.size() == rows.size()
                ? finished
                : finished.index_select(0, IndexTensor(next_rows, device));
  current_ = std::move(next);
  ++layer_;
  if (done()) Sync(hidden_);
  compute_ms_ += MillisSince(start);
}

void SelectiveRecompute::Finish() {
  const auto start = SteadyClock::now();
  const int64_t num_layers = model_->num_layers();
  out_->logits = model_->Logits(hidden_.narrow(0, hidden_.size(0) - 1, 1)).squeeze(0);
  Sync(out_->logits);
  out_->times.prefill_ms = compute_ms_ + MillisSince(start);
  out_->recompute_share = num_layers > 1 ? static_cast<double>(recomputed_after_layer0_) /
                                               static_cast<double>(n_ * (num_layers - 1))
                                         : 1.0;
  out_->compute_share = static_cast<double>(computed_) / static_cast<double>(n_ * num_layers);
  out_->layer_budgets.clear();
  // Retention protects each layer's recompute set.
  ApplyRetention(options_.retention, recomputed_, out_);
}

}  // namespace semshare
