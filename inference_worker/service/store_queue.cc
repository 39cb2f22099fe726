#include "inference_worker/service/store_queue.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <exception>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/allocator.h"
#include "common/status_macros.h"
#include "inference_worker/engine/engine.h"
#include "inference_worker/service/kv_blobs.h"

namespace semshare::worker {

StoreQueue::StoreQueue(const Engine* engine, const ECacheOptions& ecache, ReferenceSource* source,
                       LocalReferenceCache* local, std::string fingerprint,
                       const StoreQueueOptions& options, WorkerMetrics* metrics)
    : engine_(engine),
      ecache_(std::make_unique<const ECacheOptions>(ecache)),
      source_(source),
      local_(local),
      fingerprint_(std::move(fingerprint)),
      options_(options),
      metrics_(metrics) {
  thread_ = std::thread([this] { Loop(); });
}

StoreQueue::~StoreQueue() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

void StoreQueue::Enqueue(std::string tenant, std::vector<int32_t> prompt, StorePlacement placement,
                         std::shared_ptr<Reference> reference) {
  Pending store{std::move(tenant), std::move(prompt), std::move(placement), std::move(reference),
                0};
  if (store.reference != nullptr) store.bytes = store.reference->kv.bytes();
  absl::MutexLock lock(&mutex_);
  if (static_cast<int32_t>(pending_.size()) >= options_.max_pending) {
    ++counts_.dropped;
    if (metrics_ != nullptr) metrics_->RecordStore("dropped");
    return;
  }
  if (pending_bytes_ + store.bytes > options_.max_pending_bytes) {
    store.reference.reset();  // too much KV waiting: the store recomputes it
    store.bytes = 0;
  }
  pending_bytes_ += store.bytes;
  pending_.push_back(std::move(store));
}

void StoreQueue::Loop() {
  while (true) {
    Pending store;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(this, &StoreQueue::HasWork));
      if (pending_.empty()) return;  // stopping, and nothing left
      store = std::move(pending_.front());
      pending_.pop_front();
      pending_bytes_ -= store.bytes;
      storing_ = true;
    }
    const StorePlacement placement = store.placement;
    absl::Status stored;
    try {
      stored = Store(std::move(store));
    } catch (const std::bad_alloc&) {
      stored = absl::ResourceExhaustedError("out of memory");
    } catch (const std::exception& e) {
      stored = absl::InternalError(e.what());
    }
    store = Pending{};  // the KV goes before the heap is trimmed
    ReleaseFreeMemory();
    if (!stored.ok()) {
      std::fprintf(stderr, "semshare-worker: storing reference %s on %s failed: %s\n",
                   placement.reference_id.c_str(), placement.shard.c_str(),
                   stored.ToString().c_str());
    }
    absl::MutexLock lock(&mutex_);
    storing_ = false;
    ++(stored.ok() ? counts_.done : counts_.failed);
    if (metrics_ != nullptr) metrics_->RecordStore(stored.ok() ? "stored" : "failed");
  }
}

absl::Status StoreQueue::Store(Pending store) {
  if (store.reference == nullptr) {
    SEMSHARE_ASSIGN_OR_RETURN(Reference built, engine_->BuildReference(store.prompt, *ecache_));
    store.reference = std::make_shared<Reference>(std::move(built));
  } else if (!store.reference->sketch.defined()) {
    // A miss's KV without its codes: computed here, off the scheduler's thread.
    SEMSHARE_ASSIGN_OR_RETURN(
        store.reference->codes,
        engine_->EncodeCodes(store.prompt, *ecache_, &store.reference->sketch));
  }
  const Reference& reference = *store.reference;
  cache_node::NewReference new_reference;
  new_reference.reference_id = store.placement.reference_id;
  new_reference.tenant_byte_budget = store.placement.tenant_byte_budget;
  new_reference.token_ids = reference.ids;
  new_reference.codes = reference.codes;
  const at::Tensor sketch = reference.sketch.to(at::kCPU, at::kFloat).contiguous();
  new_reference.sketch.assign(sketch.data_ptr<float>(), sketch.data_ptr<float>() + sketch.numel());
  for (const LayerKV& layer : reference.kv.layers) {
    cache_node::LayerKV blobs;
    SEMSHARE_ASSIGN_OR_RETURN(blobs.key, BlobFromTensor(layer.k()));
    SEMSHARE_ASSIGN_OR_RETURN(blobs.value, BlobFromTensor(layer.v()));
    new_reference.layers.push_back(std::move(blobs));
  }
  SEMSHARE_RETURN_IF_ERROR(
      source_->Put(store.placement.shard, {store.tenant, fingerprint_}, std::move(new_reference)));
  // The worker that made a reference holds all of it: a repeat hit here needs no transfer.
  std::vector<int32_t> positions(reference.ids.size());
  for (size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<int32_t>(i);
  local_->Add({store.tenant, fingerprint_, store.placement.reference_id}, reference.kv, positions);
  if (metrics_ != nullptr) metrics_->SetLocalCache(local_->bytes(), local_->size());
  return absl::OkStatus();
}

void StoreQueue::WaitIdle() {
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(this, &StoreQueue::Idle));
}

StoreCounts StoreQueue::counts() const {
  absl::MutexLock lock(&mutex_);
  StoreCounts counts = counts_;
  counts.pending = static_cast<int32_t>(pending_.size()) + (storing_ ? 1 : 0);
  return counts;
}

}  // namespace semshare::worker
