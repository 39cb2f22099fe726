#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_STREAMED_FETCH_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_STREAMED_FETCH_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cache_node/cache_node.h"
#include "common/token_mapping.h"
#include "inference_worker/engine/model_config.h"
#include "inference_worker/engine/prefill_task.h"
#include "inference_worker/service/reference_source.h"

namespace semshare::worker {

// What a fetch asks for: the reference, where it is, and the rows in target order.
struct FetchRequest {
  std::string shard;
  cache_node::ReferenceScope scope;
  std::string reference_id;
  std::vector<int32_t> source;  // target token i is reference token source[i]
};

// FetchKV on its own thread, handing each layer to the engine as it arrives: the transfer of
// layer l+1 overlaps the recompute of layer l. Checks each layer fits the model and the prompt,
// and keeps the layers for the worker's local cache. `on_progress` is called (on the fetch
// thread) after each layer and at the end, so a scheduler waiting for a layer can look again.
class StreamedFetch final : public GatheredLayerSource {
 public:
  StreamedFetch(ReferenceSource* source, FetchRequest request, const ModelConfig& config,
                std::function<void()> on_progress);
  // Stops the transfer if it is still running.
  ~StreamedFetch() override;

  bool LayerReady(int64_t l) override;
  absl::StatusOr<LayerKV> Layer(int64_t l) override;

  bool done();
  // Waits for the end of the transfer; OK when every layer arrived intact.
  absl::Status Finish();
  // After Finish() is OK: every layer, in target order, and their reference positions.
  KVCache TakeLayers();
  std::vector<int32_t> row_positions();
  // After Finish(): KV bytes that arrived, and how long the transfer took.
  int64_t bytes();
  double transfer_seconds();

 private:
  bool ArrivedOrDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return done_ || layers_[waiting_for_].has_value();
  }
  absl::Status Accept(cache_node::FetchedLayer layer);

  const ModelConfig& config_;
  const int64_t n_;
  const std::function<void()> on_progress_;
  absl::Mutex mutex_;
  std::vector<std::optional<LayerKV>> layers_ ABSL_GUARDED_BY(mutex_);
  std::vector<int32_t> row_positions_ ABSL_GUARDED_BY(mutex_);
  size_t waiting_for_ ABSL_GUARDED_BY(mutex_) = 0;  // the layer Layer() waits for
  int64_t bytes_ ABSL_GUARDED_BY(mutex_) = 0;
  double transfer_seconds_ ABSL_GUARDED_BY(mutex_) = 0;
  absl::Status status_ ABSL_GUARDED_BY(mutex_);
  bool done_ ABSL_GUARDED_BY(mutex_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_STREAMED_FETCH_H_
