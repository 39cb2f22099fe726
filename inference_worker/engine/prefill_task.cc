#include "inference_worker/engine/prefill_task.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "inference_worker/engine/guarded.h"
#include "inference_worker/engine/kv_rearrange.h"
#include "inference_worker/engine/selective_recompute.h"

namespace semshare {
namespace {

class ChunkedPrefill final : public PrefillTask {
 public:
  ChunkedPrefill(const Model* model, std::vector<int32_t> target, KVCache prefix,
                 const ReuseOptions& options, const PrefillPieces& pieces)
      : model_(model),
        target_(std::move(target)),
        options_(options),
        pieces_(pieces),
        prefix_(std::move(prefix)) {
    const int64_t n = static_cast<int64_t>(target_.size());
    out_.prompt_tokens = n;
    next_ = prefix_.layers.empty() ? 0 : prefix_.layers.front().size();
    out_.method = next_ > 0 ? "prefix" : "full";
    out_.hit = next_ > 0;
    out_.reused_prefix_tokens = next_;
    out_.recompute_share = static_cast<double>(n - next_) / static_cast<double>(n);
    out_.compute_share = out_.recompute_share;
  }

  absl::Status Step() override {
    const auto start = SteadyClock::now();
    absl::Status status = Guarded("prefill", [&]() -> absl::Status {
      const int64_t n = out_.prompt_tokens;
      if (out_.cache.layers.empty()) {
        out_.cache = model_->NewCache(n);
        for (size_t l = 0; l < prefix_.layers.size(); ++l) {
          const LayerKV& rows = prefix_.layers[l];
          out_.cache.layers[l].Append(rows.k(), rows.v(), rows.positions());
        }
        prefix_ = KVCache{};
      }
      const int64_t chunk = pieces_.chunk_tokens > 0 ? pieces_.chunk_tokens : n;
      const int64_t end = std::min(n, next_ + chunk);
      Model::PrefillChunkRequest request;
      request.stats = &out_.stats;
      request.window_start_position = n - options_.observation_window;
      request.stats_from_every_query = options_.retention.policy == RetentionPolicy::kH2O;
      request.last_chunk = end == n;
      at::Tensor logits =
          model_->PrefillChunk(std::vector<int32_t>(target_.begin() + next_, target_.begin() + end),
                               &out_.cache, request);
      next_ = end;
      if (next_ == n) {
        if (logits.is_cuda()) (void)logits.sum().item<float>();  // timings mean the work
        out_.logits = std::move(logits);
      }
      return absl::OkStatus();
    });
    const double ms = MillisSince(start);
    step_ms_ += ms;
    out_.times.prefill_ms += ms;
    return status;
  }

  bool done() const override { return next_ == out_.prompt_tokens; }

  absl::StatusOr<PrefillOutcome> Finish() override {
    SEMSHARE_RETURN_IF_ERROR(Guarded("retention", [&]() -> absl::Status {
      // Retention and decode replace or grow the cache's tensors; the copy keeps them whole.
      if (pieces_.keep_full_kv) full_kv_ = out_.cache.Clone();
      ApplyRetention(options_.retention, {}, &out_);
      return absl::OkStatus();
    }));
    return std::move(out_);
  }

  KVCache TakeFullKV() override { return std::move(full_kv_); }

 private:
  const Model* model_;
  const std::vector<int32_t> target_;
  const ReuseOptions options_;
  const PrefillPieces pieces_;
  KVCache prefix_;  // moved into the cache by the first piece
  PrefillOutcome out_;
  KVCache full_kv_;
  int64_t next_ = 0;  // the first token not yet prefilled
};

class GatheredRecompute final : public PrefillTask {
 public:
  GatheredRecompute(const Model* model, std::vector<int32_t> target, TokenMapping mapping,
                    GatheredLayerSource* layers, const ReuseOptions& options,
                    const PrefillPieces& pieces)
      : model_(model),
        target_(std::move(target)),
        mapping_(std::move(mapping)),
        layers_(layers),
        options_(options),
        pieces_(pieces),
        rearranger_(&model->rope(), options.rerotate_keys) {
    out_.prompt_tokens = static_cast<int64_t>(target_.size());
    out_.similarity = mapping_.similarity;
  }

  bool Ready() override {
    return done() || layers_->LayerReady(recompute_.has_value() ? recompute_->next_layer() : 0);
  }

  absl::Status Step() override {
    const auto start = SteadyClock::now();
    absl::Status status = Guarded("prefill", [&]() -> absl::Status {
      const int64_t n = out_.prompt_tokens;
      if (!recompute_.has_value()) {
        const auto encode = SteadyClock::now();
        // Rows are already in target order: the identity gather leaves them bit for bit, and
        // the re-rotation reads each row's reference position from the gathered positions.
        positions_ = at::arange(n, at::TensorOptions().dtype(at::kLong).device(model_->device()));
        at::Tensor embeddings = model_->Embed(model_->IdsTensor(target_));
        out_.times.encode_ms = MillisSince(encode);
        out_.cache.layers.resize(static_cast<size_t>(model_->num_layers()));
        recompute_.emplace(model_, std::move(embeddings), mapping_, options_, &out_);
      }
      for (int64_t k = 0; k < std::max<int64_t>(1, pieces_.recompute_layers) && !recompute_->done();
           ++k) {
        SEMSHARE_RETURN_IF_ERROR(PrepareLayer(recompute_->next_layer()));
        recompute_->StepLayer();
      }
      if (recompute_->done()) {
        recompute_->Finish();
        finished_ = true;
      }
      return absl::OkStatus();
    });
    step_ms_ += MillisSince(start);
    return status;
  }

  bool done() const override { return finished_; }

  absl::StatusOr<PrefillOutcome> Finish() override { return std::move(out_); }

 private:
  absl::Status PrepareLayer(int64_t l) {
    const ModelConfig& c = model_->config();
    const int64_t n = out_.prompt_tokens;
    const auto wait = SteadyClock::now();
    SEMSHARE_ASSIGN_OR_RETURN(LayerKV layer, layers_->Layer(l));
    out_.times.kv_wait_ms += MillisSince(wait);
    if (layer.size() != n || layer.k().size(0) != c.num_key_value_heads ||
        layer.k().size(2) != c.head_dim || layer.v().sizes() != layer.k().sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "gathered KV layer ", l, " of shape [", layer.k().size(0), ", ", layer.size(), ", ",
          layer.k().size(2), "] does not fit the model and prompt"));
    }
    const auto rearrange = SteadyClock::now();
    const LayerKV on_device(layer.k().to(model_->device(), model_->dtype()),
                            layer.v().to(model_->device(), model_->dtype()),
                            layer.positions().to(model_->device(), at::kLong));
    out_.cache.layers[static_cast<size_t>(l)] =
        rearranger_.Rearrange(on_device, positions_, positions_);
    out_.times.rearrange_ms += MillisSince(rearrange);
    return absl::OkStatus();
  }

  const Model* model_;
  const std::vector<int32_t> target_;
  const TokenMapping mapping_;
  GatheredLayerSource* const layers_;
  const ReuseOptions options_;
  const PrefillPieces pieces_;
  LayerRearranger rearranger_;
  PrefillOutcome out_;
  at::Tensor positions_;
  std::optional<SelectiveRecompute> recompute_;  // made by the first piece
  bool finished_ = false;
};

}  // namespace

absl::Status PrefillPieces::Validate() const {
  if (chunk_tokens < 0) return absl::InvalidArgumentError("prefill chunk tokens must be >= 0");
  if (recompute_layers < 1)
    return absl::InvalidArgumentError("recompute layers per piece must be >= 1");
  return absl::OkStatus();
}

std::unique_ptr<PrefillTask> NewChunkedPrefill(const Model* model, std::vector<int32_t> target,
                                               KVCache prefix, const ReuseOptions& options,
                                               const PrefillPieces& pieces) {
  return std::make_unique<ChunkedPrefill>(model, std::move(target), std::move(prefix), options,
                                          pieces);
}

std::unique_ptr<PrefillTask> NewGatheredRecompute(const Model* model, std::vector<int32_t> target,
                                                  TokenMapping mapping, GatheredLayerSource* layers,
                                                  const ReuseOptions& options,
                                                  const PrefillPieces& pieces) {
  return std::make_unique<GatheredRecompute>(model, std::move(target), std::move(mapping), layers,
                                             options, pieces);
}

}  // namespace semshare
