#include "inference_worker/service/worker.h"

#include <ATen/ATen.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/allocator.h"
#include "common/status_macros.h"
#include "inference_worker/engine/engine.h"

namespace semshare::worker {

// Rows of a reference's KV the worker holds, in ascending reference position; each layer's
// positions are those reference positions.
struct HeldReference {
  std::string reference_id;
  std::vector<int32_t> positions;
  KVCache kv;
  int64_t bytes = 0;
};

namespace {

using Clock = std::chrono::steady_clock;

// Niceness of a fetch thread (Linux sets it per thread).
constexpr int kFetchThreadNice = 10;

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string HeldKey(const std::string& tenant, const std::string& fingerprint,
                    const std::string& id) {
  return absl::StrCat(tenant, std::string(1, '\0'), fingerprint, std::string(1, '\0'), id);
}

absl::StatusOr<at::ScalarType> ScalarTypeOf(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return at::kFloat;
    case DType::kFloat16:
      return at::kHalf;
    case DType::kBFloat16:
      return at::kBFloat16;
  }
  return absl::InvalidArgumentError("unknown KV dtype");
}

absl::StatusOr<DType> DTypeOf(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return DType::kFloat32;
    case at::kHalf:
      return DType::kFloat16;
    case at::kBFloat16:
      return DType::kBFloat16;
    default:
      return absl::InvalidArgumentError(absl::StrCat("no KV dtype for ", at::toString(type)));
  }
}

absl::StatusOr<at::Tensor> TensorFromBlob(const TensorBlob& blob) {
  SEMSHARE_ASSIGN_OR_RETURN(at::ScalarType type, ScalarTypeOf(blob.dtype));
  int64_t numel = 1;
  for (int64_t d : blob.shape) numel *= d;
  if (blob.shape.size() != 3 || numel * static_cast<int64_t>(at::elementSize(type)) !=
                                    static_cast<int64_t>(blob.data.size())) {
    return absl::InvalidArgumentError("fetched KV blob has a bad shape or size");
  }
  at::Tensor t = at::empty(blob.shape, at::TensorOptions().dtype(type));
  std::memcpy(t.data_ptr(), blob.data.data(), blob.data.size());
  return t;
}

absl::StatusOr<TensorBlob> BlobFromTensor(const at::Tensor& tensor) {
  TensorBlob blob;
  SEMSHARE_ASSIGN_OR_RETURN(blob.dtype, DTypeOf(tensor.scalar_type()));
  const at::Tensor t = tensor.to(at::kCPU).contiguous();
  blob.shape.assign(t.sizes().begin(), t.sizes().end());
  blob.data.assign(static_cast<const char*>(t.data_ptr()), t.nbytes());
  return blob;
}

// The distinct reference positions among `row_positions`, each row's KV once.
std::shared_ptr<const HeldReference> HoldRows(const std::string& reference_id, const KVCache& rows,
                                              const std::vector<int32_t>& row_positions) {
  std::map<int32_t, int64_t> first_row;
  for (size_t r = 0; r < row_positions.size(); ++r)
    first_row.emplace(row_positions[r], static_cast<int64_t>(r));
  auto held = std::make_shared<HeldReference>();
  held->reference_id = reference_id;
  std::vector<int64_t> index;
  std::vector<int64_t> positions;
  for (const auto& [position, row] : first_row) {
    held->positions.push_back(position);
    positions.push_back(position);
    index.push_back(row);
  }
  const at::Tensor index_tensor = at::tensor(index, at::kLong);
  const at::Tensor position_tensor = at::tensor(positions, at::kLong);
  for (const LayerKV& layer : rows.layers) {
    const at::Device device = layer.k().device();
    held->kv.layers.emplace_back(layer.k().index_select(1, index_tensor.to(device)),
                                 layer.v().index_select(1, index_tensor.to(device)),
                                 position_tensor.to(device));
    held->bytes += static_cast<int64_t>(held->kv.layers.back().k().nbytes() +
                                        held->kv.layers.back().v().nbytes());
  }
  return held;
}

// `held` extended by the rows of `rows`.
std::shared_ptr<const HeldReference> MergeRows(const HeldReference* held,
                                               const std::string& reference_id, const KVCache& rows,
                                               const std::vector<int32_t>& row_positions) {
  if (held == nullptr) return HoldRows(reference_id, rows, row_positions);
  KVCache both;
  for (size_t l = 0; l < rows.layers.size(); ++l) {
    const LayerKV& a = held->kv.layers[l];
    const LayerKV& b = rows.layers[l];
    both.layers.emplace_back(at::cat({a.k(), b.k()}, 1), at::cat({a.v(), b.v()}, 1),
                             at::cat({a.positions(), b.positions()}, 0));
  }
  std::vector<int32_t> positions = held->positions;
  positions.insert(positions.end(), row_positions.begin(), row_positions.end());
  return HoldRows(reference_id, both, positions);
}

// Rows of `held` in target order (row i = reference token source[i]), or nullopt when it does
// not hold every one.
std::optional<KVCache> GatherHeld(const HeldReference& held, const std::vector<int32_t>& source) {
  std::vector<int64_t> index;
  index.reserve(source.size());
  for (int32_t s : source) {
    auto it = std::lower_bound(held.positions.begin(), held.positions.end(), s);
    if (it == held.positions.end() || *it != s) return std::nullopt;
    index.push_back(it - held.positions.begin());
  }
  const at::Tensor index_tensor = at::tensor(index, at::kLong);
  const at::Tensor positions =
      at::tensor(std::vector<int64_t>(source.begin(), source.end()), at::kLong);
  KVCache gathered;
  for (const LayerKV& layer : held.kv.layers) {
    const at::Device device = layer.k().device();
    gathered.layers.emplace_back(layer.k().index_select(1, index_tensor.to(device)),
                                 layer.v().index_select(1, index_tensor.to(device)),
                                 positions.to(device));
  }
  return gathered;
}

// FetchKV on its own thread, handing each layer to the engine as it arrives: the transfer of
// layer l+1 overlaps the recompute of layer l. Checks each layer fits the model and the prompt,
// and keeps the layers for the worker's local cache.
class StreamedFetch : public GatheredLayerSource {
 public:
  StreamedFetch(ReferenceSource* source, const cache_node::ReferenceScope& scope,
                const ReuseSource& reuse, const ModelConfig& config)
      : config_(config), n_(static_cast<int64_t>(reuse.mapping.source.size())) {
    layers_.resize(static_cast<size_t>(config.num_hidden_layers));
    thread_ = std::thread([this, source, scope, reuse] {
      // The recompute is the critical path: the transfer takes the cores it leaves.
      setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kFetchThreadNice);
      const auto start = Clock::now();
      absl::Status status = source->FetchKV(
          reuse.shard, scope, reuse.reference_id, reuse.mapping.source,
          [this](cache_node::FetchedLayer layer) { return Accept(std::move(layer)); });
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
    });
  }

  // Stops the transfer if it is still running.
  ~StreamedFetch() override {
    {
      absl::MutexLock lock(&mutex_);
      cancelled_ = true;
    }
    thread_.join();
  }

  absl::StatusOr<LayerKV> Layer(int64_t l) override {
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

  // Waits for the end of the transfer; OK when every layer arrived intact.
  absl::Status Finish() {
    absl::MutexLock lock(&mutex_);
    mutex_.Await(absl::Condition(&done_));
    return status_;
  }

  // After Finish() is OK: every layer, in target order, and their reference positions.
  KVCache TakeLayers() {
    absl::MutexLock lock(&mutex_);
    KVCache cache;
    for (auto& layer : layers_) cache.layers.push_back(std::move(*layer));
    return cache;
  }
  std::vector<int32_t> row_positions() {
    absl::MutexLock lock(&mutex_);
    return row_positions_;
  }
  // After Finish(): KV bytes that arrived, and how long the transfer took.
  int64_t bytes() {
    absl::MutexLock lock(&mutex_);
    return bytes_;
  }
  double transfer_seconds() {
    absl::MutexLock lock(&mutex_);
    return transfer_seconds_;
  }

 private:
  bool ArrivedOrDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return done_ || layers_[waiting_for_].has_value();
  }

  absl::Status Accept(cache_node::FetchedLayer layer) {
    if (layer.layer < 0 || layer.layer >= config_.num_hidden_layers) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected layer ", layer.layer));
    }
    if (static_cast<int64_t>(layer.target_tokens.size()) != n_ ||
        static_cast<int64_t>(layer.source_positions.size()) != n_) {
      return absl::InvalidArgumentError("fetched layer does not cover every target token");
    }
    for (int64_t i = 0; i < n_; ++i) {
      if (layer.target_tokens[i] != i)
        return absl::InvalidArgumentError("fetched rows out of order");
    }
    SEMSHARE_ASSIGN_OR_RETURN(at::Tensor k, TensorFromBlob(layer.kv.key));
    SEMSHARE_ASSIGN_OR_RETURN(at::Tensor v, TensorFromBlob(layer.kv.value));
    if (k.size(0) != config_.num_key_value_heads || k.size(1) != n_ ||
        k.size(2) != config_.head_dim || !k.sizes().equals(v.sizes())) {
      return absl::InvalidArgumentError("fetched KV does not fit the model");
    }
    const at::Tensor positions = at::tensor(
        std::vector<int64_t>(layer.source_positions.begin(), layer.source_positions.end()),
        at::kLong);
    absl::MutexLock lock(&mutex_);
    bytes_ += static_cast<int64_t>(layer.kv.key.data.size() + layer.kv.value.data.size());
    if (cancelled_) return absl::CancelledError("the request no longer needs the reference");
    if (layers_[layer.layer].has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("layer ", layer.layer, " arrived twice"));
    }
    if (layer.layer == 0) row_positions_ = layer.source_positions;
    layers_[layer.layer].emplace(std::move(k), std::move(v), positions);
    return absl::OkStatus();
  }

  const ModelConfig& config_;
  const int64_t n_;
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

// The reference's length as far as the mapping shows it (its last position mapped to).
int64_t ReferenceTokensSeen(const TokenMapping& mapping) {
  int32_t last = -1;
  for (int32_t s : mapping.source) last = std::max(last, s);
  return last + 1;
}

std::string OutcomeOf(const absl::StatusOr<WorkerReply>& reply) {
  if (!reply.ok()) return "error";
  if (reply->cache_hit) return "hit";
  if (reply->bypassed) return "bypass";
  return "miss";
}

}  // namespace

absl::Status WorkerOptions::Validate() const {
  if (max_concurrent < 1) return absl::InvalidArgumentError("max concurrent requests must be >= 1");
  if (max_queue < 0) return absl::InvalidArgumentError("max queued requests must be >= 0");
  if (local_cache_bytes < 0) return absl::InvalidArgumentError("local cache bytes must be >= 0");
  if (max_pending_stores < 0) return absl::InvalidArgumentError("max pending stores must be >= 0");
  if (max_pending_store_bytes < 0)
    return absl::InvalidArgumentError("max pending store bytes must be >= 0");
  return absl::OkStatus();
}

InferenceWorker::InferenceWorker(const Engine* engine, const ReuseOptions& reuse,
                                 ReferenceSource* source, const WorkerOptions& options,
                                 WorkerMetrics* metrics)
    : engine_(engine),
      reuse_(std::make_unique<const ReuseOptions>(reuse)),
      source_(source),
      options_(options),
      metrics_(metrics),
      fingerprint_(engine->model().fingerprint()),
      held_(options.local_cache_bytes) {
  store_thread_ = std::thread([this] { StoreLoop(); });
}

absl::StatusOr<std::unique_ptr<InferenceWorker>> InferenceWorker::Create(
    const Engine* engine, const ReuseOptions& reuse, ReferenceSource* source,
    const WorkerOptions& options, WorkerMetrics* metrics) {
  if (engine == nullptr || source == nullptr)
    return absl::InvalidArgumentError("worker needs an engine and a source");
  SEMSHARE_RETURN_IF_ERROR(options.Validate());
  SEMSHARE_RETURN_IF_ERROR(reuse.Validate());
  if (reuse.method != ReuseMethod::kSemShare) {
    return absl::InvalidArgumentError("the worker serves the semshare method only");
  }
  return std::unique_ptr<InferenceWorker>(
      new InferenceWorker(engine, reuse, source, options, metrics));
}

InferenceWorker::~InferenceWorker() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  store_thread_.join();
}

absl::Status InferenceWorker::Admit() {
  absl::MutexLock lock(&mutex_);
  if (queued_ == 0 && HasFreeSlot()) {
    ++active_;
    RecordLoad();
    return absl::OkStatus();
  }
  if (queued_ >= options_.max_queue) {
    if (metrics_ != nullptr) metrics_->RecordRejected();
    return absl::ResourceExhaustedError(absl::StrCat(
        "worker busy: ", active_, " running, ", queued_, " queued (max ", options_.max_queue, ")"));
  }
  ++queued_;
  RecordLoad();
  mutex_.Await(absl::Condition(this, &InferenceWorker::HasFreeSlot));
  --queued_;
  ++active_;
  RecordLoad();
  return absl::OkStatus();
}

void InferenceWorker::Release() {
  absl::MutexLock lock(&mutex_);
  --active_;
  RecordLoad();
}

void InferenceWorker::RecordLoad() {
  if (metrics_ != nullptr) metrics_->SetLoad(active_, queued_);
}

void InferenceWorker::RecordLocalCache() {
  if (metrics_ != nullptr)
    metrics_->SetLocalCache(held_.bytes(), static_cast<int64_t>(held_.size()));
}

absl::StatusOr<WorkerReply> InferenceWorker::Generate(const WorkerRequest& request) {
  SEMSHARE_RETURN_IF_ERROR(Admit());
  absl::StatusOr<WorkerReply> reply = Serve(request);
  Release();
  if (metrics_ != nullptr) metrics_->RecordRequest(request.tenant, OutcomeOf(reply));
  ReleaseFreeMemory();
  return reply;
}

absl::StatusOr<WorkerReply> InferenceWorker::Serve(const WorkerRequest& request) {
  const auto start = Clock::now();
  if (request.tenant.empty()) return absl::InvalidArgumentError("request has no tenant");
  SamplingOptions sampling;
  sampling.max_tokens = request.sampling.max_tokens;
  sampling.temperature = request.sampling.temperature;
  sampling.top_p = request.sampling.top_p;
  sampling.seed = request.sampling.seed;
  for (int64_t eos : engine_->model().config().eos_token_ids)
    sampling.stop_tokens.push_back(static_cast<int32_t>(eos));
  SEMSHARE_RETURN_IF_ERROR(sampling.Validate());
  // Tokens go out as they are chosen, with the text each adds (held back while it ends in an
  // incomplete character; the service sends what is left after the last token).
  const Tokenizer* tokenizer = engine_->model().tokenizer();
  std::optional<IncrementalDetokenizer> detokenizer;
  if (tokenizer != nullptr) detokenizer.emplace(tokenizer);
  bool emitted_any = false;
  if (request.on_token) {
    sampling.on_token = [&](int32_t token) {
      emitted_any = true;
      return request.on_token(token, detokenizer.has_value() ? detokenizer->Next(token) : "");
    };
  }

  WorkerReply reply;
  std::optional<GenerateResult> result;
  if (request.reuse.has_value()) {
    const ReuseSource& reuse = *request.reuse;
    const double threshold = request.similarity_threshold > 0 ? request.similarity_threshold
                                                              : reuse_->similarity_threshold;
    const cache_node::ReferenceScope scope{request.tenant, request.model_fingerprint};
    const std::string key = HeldKey(request.tenant, request.model_fingerprint, reuse.reference_id);
    if (request.model_fingerprint != fingerprint_) {
      reply.miss_reason = "the reference was made by another model";
    } else if (reuse.mapping.source.size() != request.prompt.size()) {
      reply.miss_reason = "the mapping does not cover the prompt";
    } else if (reuse.mapping.similarity < threshold) {
      reply.miss_reason = "similarity below the threshold";
    } else if (std::optional<std::string> bypass =
                   engine_->BypassReason(static_cast<int64_t>(request.prompt.size()),
                                         ReferenceTokensSeen(reuse.mapping), *reuse_)) {
      // Not fetched: the transfer would be wasted too. The router named no store target.
      reply.bypassed = true;
      reply.bypass_reason = *std::move(bypass);
      reply.miss_reason = absl::StrCat("reuse bypassed: ", reply.bypass_reason);
      reply.similarity = reuse.mapping.similarity;
    } else {
      const auto fetch_start = Clock::now();
      std::shared_ptr<const HeldReference> held;
      {
        absl::MutexLock lock(&mutex_);
        held = held_.Get(key).value_or(nullptr);
      }
      std::optional<KVCache> gathered;
      if (held != nullptr) gathered = GatherHeld(*held, reuse.mapping.source);
      reply.local_hit = gathered.has_value();
      absl::StatusOr<GenerateResult> hit;
      absl::Status fetched = absl::OkStatus();
      double before_ms = MillisSince(fetch_start);  // before the engine starts
      if (gathered.has_value()) {
        hit = engine_->GenerateGathered(request.prompt, reuse.mapping, *std::move(gathered),
                                        *reuse_, sampling);
      } else {
        // The engine takes each layer as it arrives; the rest of the transfer overlaps the
        // recompute.
        StreamedFetch fetch(source_, scope, reuse, engine_->model().config());
        if (!options_.overlap_fetch) {
          fetched = fetch.Finish();
          before_ms = MillisSince(fetch_start);
        }
        if (fetched.ok())
          hit = engine_->GenerateGathered(request.prompt, reuse.mapping, &fetch, *reuse_, sampling);
        fetched = fetch.Finish();
        if (metrics_ != nullptr)
          metrics_->RecordFetch(request.tenant, fetch.bytes(), fetch.transfer_seconds());
        if (fetched.ok()) {
          std::shared_ptr<const HeldReference> merged =
              MergeRows(held.get(), reuse.reference_id, fetch.TakeLayers(), fetch.row_positions());
          absl::MutexLock lock(&mutex_);
          held_.Put(key, merged, merged->bytes);
          RecordLocalCache();
        }
      }
      if (hit.ok()) {
        result = *std::move(hit);
        if (reply.local_hit && metrics_ != nullptr) metrics_->RecordLocalCacheHit();
        // Only the time the recompute waited for KV still in transfer delays the first token.
        reply.fetch_ms = before_ms + result->prefill.times.kv_wait_ms;
        reply.ttft_ms = before_ms + result->ttft_ms;
        reply.cache_hit = true;
        reply.reference_id = reuse.reference_id;
        reply.shard = reuse.shard;
        reply.similarity = reuse.mapping.similarity;
      } else if (emitted_any) {
        return hit.status();  // tokens already went out: a second try would repeat them
      } else {
        reply.local_hit = false;
        reply.fetch_ms = MillisSince(fetch_start);
        reply.miss_reason = fetched.ok() ? absl::StrCat("reuse failed: ", hit.status().ToString())
                                         : absl::StrCat("fetch failed: ", fetched.ToString());
      }
    }
  }
  if (!result.has_value()) {
    if (!request.store.has_value()) {
      SEMSHARE_ASSIGN_OR_RETURN(GenerateResult miss,
                                engine_->Generate(request.prompt, nullptr, *reuse_, sampling));
      result = std::move(miss);
    } else {
      // The miss's own prefill becomes the new reference: storing it costs no second prefill.
      SEMSHARE_ASSIGN_OR_RETURN(auto miss,
                                engine_->GenerateMiss(request.prompt, *reuse_, sampling));
      result = std::move(miss.first);
      PendingStore store{request.tenant, request.prompt, *request.store,
                         std::make_shared<Reference>(std::move(miss.second)), 0};
      store.bytes = store.reference->kv.bytes();
      reply.reference_id = request.store->reference_id;
      reply.shard = request.store->shard;
      absl::MutexLock lock(&mutex_);
      if (static_cast<int32_t>(stores_.size()) < options_.max_pending_stores) {
        if (pending_store_bytes_ + store.bytes > options_.max_pending_store_bytes) {
          store.reference.reset();  // too much KV waiting: the store recomputes it
          store.bytes = 0;
        }
        pending_store_bytes_ += store.bytes;
        stores_.push_back(std::move(store));
      } else {
        ++stores_dropped_;
        if (metrics_ != nullptr) metrics_->RecordStore("dropped");
      }
    }
  }
  const PrefillOutcome& prefill = result->prefill;
  reply.tokens = result->tokens;
  if (const Tokenizer* tokenizer = engine_->model().tokenizer(); tokenizer != nullptr) {
    reply.text = tokenizer->Decode(reply.tokens);
  }
  reply.recompute_share = prefill.recompute_share;
  reply.kv_kept_share = prefill.kv_kept_share;
  reply.prompt_tokens = prefill.prompt_tokens;
  reply.recompute_ms = prefill.times.encode_ms + prefill.times.rearrange_ms +
                       prefill.times.prefill_ms + prefill.times.retention_ms;
  reply.decode_ms = prefill.times.decode_ms;
  if (!reply.cache_hit)
    reply.ttft_ms = reply.fetch_ms + result->ttft_ms;  // a failed reuse's time counts
  reply.latency_ms = MillisSince(start);
  return reply;
}

void InferenceWorker::StoreLoop() {
  while (true) {
    PendingStore store;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(this, &InferenceWorker::HasStoreWork));
      if (stores_.empty()) return;  // stopping, and nothing left
      store = std::move(stores_.front());
      stores_.pop_front();
      pending_store_bytes_ -= store.bytes;
      storing_ = true;
    }
    const StoreTarget target = store.target;
    const absl::Status stored = Store(std::move(store));
    store = PendingStore{};  // the KV goes before the heap is trimmed
    ReleaseFreeMemory();
    if (!stored.ok()) {
      std::fprintf(stderr, "semshare-worker: storing reference %s on %s failed: %s\n",
                   target.reference_id.c_str(), target.shard.c_str(), stored.ToString().c_str());
    }
    absl::MutexLock lock(&mutex_);
    storing_ = false;
    ++(stored.ok() ? stores_done_ : stores_failed_);
    if (metrics_ != nullptr) metrics_->RecordStore(stored.ok() ? "stored" : "failed");
  }
}

absl::Status InferenceWorker::Store(PendingStore store) {
  if (store.reference == nullptr) {
    SEMSHARE_ASSIGN_OR_RETURN(Reference built,
                              engine_->BuildReference(store.prompt, reuse_->ecache));
    store.reference = std::make_shared<Reference>(std::move(built));
  }
  const Reference& reference = *store.reference;
  cache_node::NewReference new_reference;
  new_reference.reference_id = store.target.reference_id;
  new_reference.tenant_byte_budget = store.target.tenant_byte_budget;
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
      source_->Put(store.target.shard, {store.tenant, fingerprint_}, std::move(new_reference)));
  // The worker that made a reference holds all of it: a repeat hit here needs no transfer.
  std::vector<int32_t> positions(reference.ids.size());
  for (size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<int32_t>(i);
  std::shared_ptr<const HeldReference> held =
      HoldRows(store.target.reference_id, reference.kv, positions);
  absl::MutexLock lock(&mutex_);
  held_.Put(HeldKey(store.tenant, fingerprint_, store.target.reference_id), held, held->bytes);
  RecordLocalCache();
  return absl::OkStatus();
}

void InferenceWorker::WaitForStores() {
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(this, &InferenceWorker::StoresIdle));
}

WorkerLoad InferenceWorker::Load() const {
  WorkerLoad load;
  load.model_fingerprint = fingerprint_;
  load.max_concurrency = options_.max_concurrent;
  absl::MutexLock lock(&mutex_);
  load.active_requests = active_;
  load.queued_requests = queued_;
  for (const std::string& key : held_.Keys())
    load.cached_reference_ids.push_back(key.substr(key.rfind('\0') + 1));
  load.cached_bytes = held_.bytes();
  load.stores_done = stores_done_;
  load.stores_failed = stores_failed_;
  load.stores_dropped = stores_dropped_;
  load.pending_stores = static_cast<int32_t>(stores_.size()) + (storing_ ? 1 : 0);
  return load;
}

}  // namespace semshare::worker
