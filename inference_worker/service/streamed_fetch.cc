#include "inference_worker/service/streamed_fetch.h"

#include <ATen/ATen.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <exception>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "inference_worker/service/kv_blobs.h"

namespace semshare::worker {
namespace {

// Niceness of a fetch thread (Linux sets it per thread).
constexpr int kFetchThreadNice = 10;

}  // namespace

StreamedFetch::StreamedFetch(ReferenceSource* source, FetchRequest request,
                             const ModelConfig& config, std::function<void()> on_progress)
    : config_(config),
      n_(static_cast<int64_t>(request.source.size())),
      on_progress_(std::move(on_progress)) {
  layers_.resize(static_cast<size_t>(config.num_hidden_layers));
  thread_ = std::thread([this, source, request = std::move(request)] {
    // The recompute is the critical path: the transfer takes the cores it leaves.
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kFetchThreadNice);
    const auto start = SteadyClock::now();
    absl::Status status;
    try {
      status = source->FetchKV(
          request.shard, request.scope, request.reference_id, request.source,
          [this](cache_node::FetchedLayer layer) { return Accept(std::move(layer)); });
    } catch (const std::bad_alloc&) {
      status = absl::ResourceExhaustedError("out of memory while fetching the reference");
    } catch (const std::exception& e) {
      status = absl::InternalError(absl::StrCat("fetching the reference: ", e.what()));
    }
    {
      absl::MutexLock lock(&mutex_);
      transfer_seconds_ = MillisSince(start) / 1e3;
      if (status.ok()) {
        for (const auto& layer : layers_) {
          if (!layer.has_value())
            status = absl::DataLossError("the fetch ended before every layer arrived");
        }
      }
      status_ = status;
      done_ = true;
    }
    if (on_progress_) on_progress_();
  });
}

StreamedFetch::~StreamedFetch() {
  {
    absl::MutexLock lock(&mutex_);
    cancelled_ = true;
  }
  thread_.join();
}

bool StreamedFetch::LayerReady(int64_t l) {
  absl::MutexLock lock(&mutex_);
  return done_ || (l >= 0 && l < static_cast<int64_t>(layers_.size()) && layers_[l].has_value());
}

absl::StatusOr<LayerKV> StreamedFetch::Layer(int64_t l) {
  if (l < 0 || l >= static_cast<int64_t>(layers_.size())) {
    return absl::InvalidArgumentError(absl::StrCat("no layer ", l));
  }
  absl::MutexLock lock(&mutex_);
  waiting_for_ = static_cast<size_t>(l);
  mutex_.Await(absl::Condition(this, &StreamedFetch::ArrivedOrDone));
  if (!layers_[waiting_for_].has_value()) {
    return status_.ok()
               ? absl::DataLossError(absl::StrCat("the fetch ended before layer ", l, " arrived"))
               : status_;
  }
  return *layers_[waiting_for_];  // shares the tensors: the engine does not write them
}

bool StreamedFetch::done() {
  absl::MutexLock lock(&mutex_);
  return done_;
}

absl::Status StreamedFetch::Finish() {
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(&done_));
  return status_;
}

KVCache StreamedFetch::TakeLayers() {
  absl::MutexLock lock(&mutex_);
  KVCache cache;
  for (auto& layer : layers_) cache.layers.push_back(std::move(*layer));
  return cache;
}

std::vector<int32_t> StreamedFetch::row_positions() {
  absl::MutexLock lock(&mutex_);
  return row_positions_;
}

int64_t StreamedFetch::bytes() {
  absl::MutexLock lock(&mutex_);
  return bytes_;
}

double StreamedFetch::transfer_seconds() {
  absl::MutexLock lock(&mutex_);
  return transfer_seconds_;
}

absl::Status StreamedFetch::Accept(cache_node::FetchedLayer layer) {
  if (layer.layer < 0 || layer.layer >= config_.num_hidden_layers) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected layer ", layer.layer));
  }
  if (static_cast<int64_t>(layer.target_tokens.size()) != n_ ||
      static_cast<int64_t>(layer.source_positions.size()) != n_) {
    return absl::InvalidArgumentError("fetched layer does not cover every target token");
  }
  for (int64_t i = 0; i < n_; ++i) {
    if (layer.target_tokens[i] != i) return absl::InvalidArgumentError("fetched rows out of order");
  }
  SEMSHARE_ASSIGN_OR_RETURN(at::Tensor k, TensorFromBlob(layer.kv.key));
  SEMSHARE_ASSIGN_OR_RETURN(at::Tensor v, TensorFromBlob(layer.kv.value));
  if (k.size(0) != config_.num_key_value_heads || k.size(1) != n_ ||
      k.size(2) != config_.head_dim || !k.sizes().equals(v.sizes())) {
    return absl::InvalidArgumentError("fetched KV does not fit the model");
  }
  const at::Tensor positions =
      at::tensor(std::vector<int64_t>(layer.source_positions.begin(), layer.source_positions.end()),
                 at::kLong);
  {
    absl::MutexLock lock(&mutex_);
    bytes_ += static_cast<int64_t>(layer.kv.key.data.size() + layer.kv.value.data.size());
    if (cancelled_) return absl::CancelledError("the request no longer needs the reference");
    if (layers_[layer.layer].has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("layer ", layer.layer, " arrived twice"));
    }
    if (layer.layer == 0) row_positions_ = layer.source_positions;
    layers_[layer.layer].emplace(std::move(k), std::move(v), positions);
  }
  if (on_progress_) on_progress_();
  return absl::OkStatus();
}

}  // namespace semshare::worker
