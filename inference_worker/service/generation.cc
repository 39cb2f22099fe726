#include "inference_worker/service/generation.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "inference_worker/engine/engine.h"

namespace semshare::worker {
namespace {

// Gathered layers already in memory (the local cache's rows).
class HeldLayers final : public GatheredLayerSource {
 public:
  explicit HeldLayers(KVCache kv) : kv_(std::move(kv)) {}
  absl::StatusOr<LayerKV> Layer(int64_t l) override {
    if (l < 0 || l >= static_cast<int64_t>(kv_.layers.size()))
      return absl::InvalidArgumentError(absl::StrCat("no layer ", l));
    return kv_.layers[l];
  }

 private:
  KVCache kv_;
};

int64_t BytesPerToken(const Model& model) {
  const ModelConfig& config = model.config();
  return 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim *
         static_cast<int64_t>(at::elementSize(model.dtype()));
}

const char* OutcomeOf(const absl::StatusOr<WorkerReply>& reply) {
  if (!reply.ok()) return "error";
  if (reply->cache_hit) return "hit";
  if (reply->bypassed) return "bypass";
  return "miss";
}

// A hit's prompt tokens not recomputed: its recompute share of layers 1.. is the average share
// of tokens each layer recomputed.
int64_t CachedTokens(const PrefillOutcome& outcome) {
  const auto recomputed = static_cast<int64_t>(
      std::llround(outcome.recompute_share * static_cast<double>(outcome.prompt_tokens)));
  return std::clamp<int64_t>(outcome.prompt_tokens - recomputed, 0, outcome.prompt_tokens);
}

}  // namespace

void TokenChannel::Push(int32_t token) {
  absl::MutexLock lock(&mutex_);
  tokens_.push_back(token);
}

void TokenChannel::Close(absl::StatusOr<WorkerReply> reply) {
  absl::MutexLock lock(&mutex_);
  end_ = std::move(reply);
}

void TokenChannel::Take(std::vector<int32_t>* tokens,
                        std::optional<absl::StatusOr<WorkerReply>>* end) {
  absl::MutexLock lock(&mutex_);
  mutex_.Await(absl::Condition(this, &TokenChannel::Ready));
  tokens->assign(tokens_.begin(), tokens_.end());
  tokens_.clear();
  if (end_.has_value()) *end = std::move(end_);
}

Generation::Generation(const GenerationContext& context, WorkerRequest request,
                       ReuseDecision decision, SamplingOptions sampling,
                       SteadyClock::time_point received, std::shared_ptr<TokenChannel> channel)
    : context_(context),
      request_(std::move(request)),
      decision_(std::move(decision)),
      sampling_(std::move(sampling)),
      received_(received),
      channel_(std::move(channel)),
      bytes_per_token_(BytesPerToken(context.engine->model())),
      // The prefill's peak: the prompt's KV twice (a hit's gathered rows beside the cache it
      // becomes; a miss's cache beside the copy it stores), and room for every new token.
      peak_kv_bytes_(bytes_per_token_ *
                     (2 * static_cast<int64_t>(request_.prompt.size()) + sampling_.max_tokens)) {}

Generation::~Generation() = default;

LocalReferenceKey Generation::ReferenceKey() const {
  return {request_.tenant, request_.model_fingerprint, request_.reuse->reference_id};
}

absl::Status Generation::Start() {
  admitted_ = SteadyClock::now();
  reply_.queue_ms = MillisBetween(received_, admitted_);
  if (context_.metrics != nullptr) context_.metrics->RecordQueueWait(reply_.queue_ms / 1e3);
  if (request_.reuse.has_value()) reply_.similarity = request_.reuse->mapping.similarity;
  if (decision_.verdict != ReuseVerdict::kReuse) {
    if (decision_.verdict == ReuseVerdict::kBypass) {
      reply_.bypassed = true;
      reply_.bypass_reason = decision_.reason;
      reply_.miss_reason = absl::StrCat("reuse bypassed: ", decision_.reason);
    } else {
      reply_.miss_reason = decision_.reason;
    }
    return StartMiss();
  }
  const ReuseSource& reuse = *request_.reuse;
  GatheredLayerSource* layers = nullptr;
  if (std::optional<KVCache> held = context_.local->Gather(ReferenceKey(), reuse.mapping.source)) {
    reply_.local_hit = true;
    held_layers_ = std::make_unique<HeldLayers>(*std::move(held));
    layers = held_layers_.get();
  } else {
    fetch_ =
        std::make_unique<StreamedFetch>(context_.source,
                                        FetchRequest{reuse.shard,
                                                     {request_.tenant, request_.model_fingerprint},
                                                     reuse.reference_id,
                                                     reuse.mapping.source},
                                        context_.engine->model().config(), context_.wake);
    layers = fetch_.get();
  }
  PrefillPieces pieces;
  pieces.recompute_layers = context_.options->recompute_layers_per_piece;
  absl::StatusOr<std::unique_ptr<PrefillTask>> task = context_.engine->StartGatheredPrefill(
      request_.prompt, reuse.mapping, layers, *context_.reuse, pieces);
  if (!task.ok()) return FallBackToMiss(task.status());
  task_ = *std::move(task);
  reusing_ = true;
  return absl::OkStatus();
}

absl::Status Generation::StartMiss() {
  PrefillPieces pieces;
  pieces.chunk_tokens = context_.options->prefill_chunk_tokens;
  pieces.keep_full_kv = request_.store.has_value();
  SEMSHARE_ASSIGN_OR_RETURN(
      task_, context_.engine->StartFullPrefill(request_.prompt, *context_.reuse, pieces));
  return absl::OkStatus();
}

absl::Status Generation::FallBackToMiss(const absl::Status& why) {
  absl::Status fetched = absl::OkStatus();
  if (fetch_ != nullptr && fetch_->done()) fetched = fetch_->Finish();
  reply_.miss_reason = fetched.ok() ? absl::StrCat("reuse failed: ", why.ToString())
                                    : absl::StrCat("fetch failed: ", fetched.ToString());
  reply_.local_hit = false;
  reply_.fetch_ms = MillisSince(admitted_);
  reusing_ = false;
  task_.reset();
  fetch_.reset();  // stops a transfer still running
  held_layers_.reset();
  return StartMiss();
}

bool Generation::PrefillReady() {
  if (fetch_ != nullptr && !context_.options->overlap_fetch && !fetch_->done()) return false;
  return task_->Ready();
}

absl::Status Generation::StepPrefill() {
  if (absl::Status stepped = task_->Step(); !stepped.ok()) {
    if (reusing_) return FallBackToMiss(stepped);
    return stepped;
  }
  if (!task_->done()) return absl::OkStatus();
  absl::StatusOr<PrefillOutcome> outcome = task_->Finish();
  if (!outcome.ok()) {
    if (reusing_) return FallBackToMiss(outcome.status());
    return outcome.status();
  }
  if (reusing_) {
    const ReuseSource& reuse = *request_.reuse;
    reply_.cache_hit = true;
    reply_.reference_id = reuse.reference_id;
    reply_.shard = reuse.shard;
    // Only the time the recompute waited for KV still in transfer delays the first token.
    reply_.fetch_ms = outcome->times.kv_wait_ms;
    if (reply_.local_hit && context_.metrics != nullptr) context_.metrics->RecordLocalCacheHit();
    if (fetch_ != nullptr) {
      const absl::Status fetched = fetch_->Finish();  // every layer is in: at most a moment
      if (context_.metrics != nullptr)
        context_.metrics->RecordFetch(request_.tenant, fetch_->bytes(), fetch_->transfer_seconds());
      if (fetched.ok()) {
        context_.local->Add(ReferenceKey(), fetch_->TakeLayers(), fetch_->row_positions());
        if (context_.metrics != nullptr)
          context_.metrics->SetLocalCache(context_.local->bytes(), context_.local->size());
      }
      fetch_.reset();
    }
    held_layers_.reset();
  } else if (request_.store.has_value()) {
    // The miss's own prefill becomes the new reference: storing it costs no second prefill
    // (its codes are computed on the store thread).
    auto reference = std::make_shared<Reference>();
    reference->ids = request_.prompt;
    reference->codes_options = context_.reuse->ecache;
    reference->kv = task_->TakeFullKV();
    context_.stores->Enqueue(request_.tenant, request_.prompt, *request_.store,
                             std::move(reference));
    reply_.reference_id = request_.store->reference_id;
    reply_.shard = request_.store->shard;
  }
  task_.reset();
  const StageTimes& times = outcome->times;
  reply_.recompute_ms =
      times.encode_ms + times.rearrange_ms + times.prefill_ms + times.retention_ms;
  reply_.recompute_share = outcome->recompute_share;
  reply_.prompt_tokens = outcome->prompt_tokens;
  if (reply_.cache_hit) reply_.cached_tokens = CachedTokens(*outcome);
  // The KV at its final size now, so decoding never reallocates it and the reservation can
  // shrink to what it will hold.
  int64_t token_layers = 0;
  for (LayerKV& layer : outcome->cache.layers) {
    layer.ReserveExtra(sampling_.max_tokens);
    token_layers += layer.size() + sampling_.max_tokens;
  }
  const int64_t layers = context_.engine->model().config().num_hidden_layers;
  remaining_kv_bytes_ = bytes_per_token_ / std::max<int64_t>(layers, 1) * token_layers;
  SEMSHARE_ASSIGN_OR_RETURN(
      DecodeSequence sequence,
      context_.engine->StartDecode(*std::move(outcome), *context_.reuse, sampling_, received_));
  sequence_ = std::make_unique<DecodeSequence>(std::move(sequence));
  EmitNewTokens();
  return absl::OkStatus();
}

void Generation::EmitNewTokens() {
  for (; emitted_ < sequence_->tokens.size(); ++emitted_)
    channel_->Push(sequence_->tokens[emitted_]);
}

absl::Status Generation::DecodeBatch(const Engine& engine,
                                     absl::Span<ScheduledRequest* const> batch) {
  std::vector<Generation*> generations;
  std::vector<DecodeSequence*> sequences;
  generations.reserve(batch.size());
  sequences.reserve(batch.size());
  for (ScheduledRequest* request : batch) {
    generations.push_back(static_cast<Generation*>(request));
    sequences.push_back(generations.back()->sequence_.get());
  }
  absl::Status stepped = engine.DecodeStep(sequences);
  for (Generation* generation : generations) generation->EmitNewTokens();
  return stepped;
}

void Generation::Complete(absl::Status status) {
  absl::StatusOr<WorkerReply> reply = absl::InternalError("completed before decoding");
  if (!status.ok()) {
    reply = std::move(status);
  } else if (sequence_ != nullptr) {
    absl::StatusOr<GenerateResult> result = context_.engine->FinishDecode(std::move(*sequence_));
    if (result.ok()) {
      reply_.tokens = std::move(result->tokens);
      reply_.decode_ms = result->prefill.times.decode_ms;
      reply_.kv_kept_share = result->prefill.kv_kept_share;
      reply = std::move(reply_);
    } else {
      reply = result.status();
    }
  }
  // Everything the request held goes now, before the caller hears of it.
  sequence_.reset();
  task_.reset();
  fetch_.reset();
  held_layers_.reset();
  if (context_.metrics != nullptr)
    context_.metrics->RecordRequest(request_.tenant, OutcomeOf(reply));
  channel_->Close(std::move(reply));
}

}  // namespace semshare::worker
