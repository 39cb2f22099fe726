#include "router/service/router.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/allocator.h"
#include "common/status_macros.h"
#include "common/stop_strings.h"
#include "router/reference_choice.h"
#include "router/rendezvous.h"

namespace semshare::router {
namespace {

double MillisSince(absl::Time start) { return absl::ToDoubleMilliseconds(absl::Now() - start); }

void SetMapping(const TokenMapping& mapping, v1::TokenMapping* out) {
  out->set_similarity(mapping.similarity);
  out->mutable_source()->Add(mapping.source.begin(), mapping.source.end());
  out->mutable_distance()->Add(mapping.distance.begin(), mapping.distance.end());
  for (size_t i = 0; i < mapping.unmatched.size(); ++i) {
    if (mapping.unmatched[i]) out->add_unmatched(static_cast<int32_t>(i));
  }
}

}  // namespace

absl::Status RouterOptions::Validate() const {
  if (!(similarity_threshold >= 0 && similarity_threshold <= 1)) {
    return absl::InvalidArgumentError("--similarity-threshold must be in [0, 1]");
  }
  if (default_max_tokens < 1)
    return absl::InvalidArgumentError("default max tokens must be at least 1");
  if (max_tokens_limit < default_max_tokens) {
    return absl::InvalidArgumentError("--max-tokens-limit must be at least the default max tokens");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Router>> Router::Create(const TargetEncoder* encoder,
                                                       ShardSearch* shards, WorkerPool* workers,
                                                       const RouterOptions& options,
                                                       RouterMetrics* metrics) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  auto router = std::unique_ptr<Router>(new Router(encoder, shards, workers, options, metrics));
  router->RecordShardViews();
  return router;
}

void Router::RecordShardViews() {
  if (metrics_ == nullptr) return;
  for (const ShardView& view : shards_->Views()) metrics_->SetShardUp(view.address, view.up);
}

std::string Router::NewReferenceId() {
  absl::MutexLock lock(&mutex_);
  return absl::StrFormat("r%016x%016x", absl::Uniform<uint64_t>(random_),
                         absl::Uniform<uint64_t>(random_));
}

absl::StatusOr<v1::GenerateStats> Router::Generate(
    const std::string& tenant, const v1::GenerateRequest& request,
    const std::function<bool(const v1::TokenChunk&)>& on_tokens) {
  if (metrics_ != nullptr) metrics_->RequestStarted();
  std::optional<double> best_similarity;
  absl::StatusOr<v1::GenerateStats> stats = Serve(tenant, request, on_tokens, &best_similarity);
  ReleaseFreeMemory();
  if (metrics_ != nullptr) {
    metrics_->RecordRequest(tenant, stats, best_similarity);
    metrics_->RequestEnded();
  }
  absl::MutexLock lock(&mutex_);
  Counters& counters = counters_[tenant];
  ++counters.requests;
  if (!stats.ok()) {
    ++counters.failures;
  } else if (stats->cache_hit()) {
    ++counters.hits;
  } else {
    ++counters.misses;
  }
  return stats;
}

absl::StatusOr<v1::GenerateStats> Router::Serve(
    const std::string& tenant, const v1::GenerateRequest& request,
    const std::function<bool(const v1::TokenChunk&)>& on_tokens,
    std::optional<double>* best_similarity) {
  const absl::Time start = absl::Now();
  if (request.prompt().empty() == request.prompt_token_ids().empty()) {
    return absl::InvalidArgumentError("give exactly one of prompt and prompt_token_ids");
  }
  if (request.max_tokens() < 0) return absl::InvalidArgumentError("max_tokens must be >= 0");
  if (request.stop_size() > static_cast<int>(kMaxStopStrings)) {
    return absl::InvalidArgumentError(absl::StrCat("stop: at most ", kMaxStopStrings,
                                                   " stop strings, got ", request.stop_size()));
  }
  if (request.max_tokens() > options_.max_tokens_limit) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens ", request.max_tokens(),
                                                   " exceeds this router's limit of ",
                                                   options_.max_tokens_limit));
  }
  SEMSHARE_ASSIGN_OR_RETURN(
      const double threshold,
      EffectiveThreshold(request.has_similarity_threshold()
                             ? std::optional<double>(request.similarity_threshold())
                             : std::nullopt,
                         options_.similarity_threshold));
  SEMSHARE_ASSIGN_OR_RETURN(EncodedTarget target,
                            request.prompt().empty()
                                ? encoder_->EncodeIds({request.prompt_token_ids().begin(),
                                                       request.prompt_token_ids().end()})
                                : encoder_->Encode(request.prompt()));
  // Before any search: a request past the model's context would fail on the worker anyway.
  // Its error carries kContextLengthExceeded (common/error_code.h).
  SEMSHARE_RETURN_IF_ERROR(encoder_->CheckFitsContext(static_cast<int64_t>(target.token_ids.size()),
                                                      EffectiveMaxTokens(request)));
  const double tokenize_ms = MillisSince(start);

  const absl::Time search_start = absl::Now();
  SEMSHARE_ASSIGN_OR_RETURN(const std::string fingerprint, workers_->ModelFingerprint());
  ReferenceSearch search;
  if (options_.reuse) {
    const std::vector<ShardFindReply> replies = shards_->FindSimilar(
        cache_node::ReferenceScope{tenant, fingerprint}, target.codes, target.sketch);
    search = ChooseReference(replies, static_cast<int64_t>(target.token_ids.size()), threshold);
  }
  const double search_ms = MillisSince(search_start);
  if (search.choice.has_value() || search.best_similarity > 0)
    *best_similarity = search.best_similarity;
  RecordShardViews();

  v1::WorkerGenerateRequest call;
  call.set_model_fingerprint(fingerprint);
  call.mutable_prompt_token_ids()->Add(target.token_ids.begin(), target.token_ids.end());
  v1::SamplingParams* sampling = call.mutable_sampling();
  sampling->set_max_tokens(EffectiveMaxTokens(request));
  sampling->set_temperature(request.temperature());
  sampling->set_top_p(request.top_p());
  sampling->set_seed(request.seed());
  *sampling->mutable_stop() = request.stop();
  *sampling->mutable_stop_token_ids() = request.stop_token_ids();
  call.set_similarity_threshold(threshold);
  std::optional<std::string> reference_id;
  if (search.choice.has_value()) {
    const ReferenceChoice& choice = *search.choice;
    reference_id = choice.reference_id;
    v1::ReuseSource* reuse = call.mutable_reuse();
    reuse->set_shard(choice.shard);
    reuse->set_reference_id(choice.reference_id);
    SetMapping(choice.mapping, reuse->mutable_mapping());
  } else if (options_.reuse) {
    // A miss becomes a reference on the shard rendezvous hashing names; none up: not stored.
    const std::string id = NewReferenceId();
    const std::vector<ShardView> views = shards_->Views();
    if (absl::StatusOr<size_t> placed = PlaceReference(views, tenant, id); placed.ok()) {
      call.mutable_store()->set_shard(views[*placed].address);
      call.mutable_store()->set_reference_id(id);
      if (auto budget = options_.tenant_byte_budgets.find(tenant);
          budget != options_.tenant_byte_budgets.end()) {
        call.mutable_store()->set_tenant_byte_budget(budget->second);
      }
    }
  }

  // TTFT as the client sees it: from accepting the request to the first token leaving here.
  std::optional<double> first_token_ms;
  const auto forward = [&](const v1::TokenChunk& chunk) {
    const bool kept = on_tokens(chunk);
    if (!first_token_ms.has_value() && chunk.token_ids_size() > 0)
      first_token_ms = MillisSince(start);
    return kept;
  };
  // One retry on another worker, unless tokens already reached the client.
  std::vector<size_t> tried;
  absl::Status last = absl::UnavailableError("no worker is available");
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<WorkerChoice> worker = workers_->Choose(tenant, reference_id, tried);
    if (!worker.ok()) break;
    tried.push_back(worker->index);
    if (attempt > 0 && metrics_ != nullptr) metrics_->RecordWorkerRetry();
    bool streamed = false;
    absl::StatusOr<v1::GenerateStats> stats =
        workers_->Generate(worker->index, tenant, call, forward, &streamed);
    if (metrics_ != nullptr) {
      // Only a transport failure says the worker is down; a busy or refusing worker answered.
      metrics_->SetWorkerUp(
          workers_->address(worker->index),
          !absl::IsUnavailable(stats.status()) && !absl::IsDeadlineExceeded(stats.status()));
    }
    if (stats.ok()) {
      stats->set_latency_ms(MillisSince(start));
      stats->set_ttft_ms(first_token_ms.value_or(stats->latency_ms()));
      stats->mutable_stages()->set_tokenize_ms(tokenize_ms);
      stats->mutable_stages()->set_search_ms(search_ms);
      if (stats->worker().empty()) stats->set_worker(workers_->address(worker->index));
      return stats;
    }
    last = stats.status();
    if (streamed || absl::IsCancelled(last) || absl::IsInvalidArgument(last) ||
        absl::IsUnauthenticated(last)) {
      break;
    }
  }
  return absl::Status(last.code(), absl::StrCat("generate failed: ", last.message()));
}

v1::RouterStats Router::Stats(const std::string& tenant) {
  v1::RouterStats stats;
  {
    absl::MutexLock lock(&mutex_);
    const Counters& counters = counters_[tenant];
    stats.set_requests(counters.requests);
    stats.set_hits(counters.hits);
    stats.set_misses(counters.misses);
    stats.set_failures(counters.failures);
  }
  const std::vector<ShardView> views = shards_->Views();
  const std::vector<absl::StatusOr<v1::GetStatsResponse>> usage = shards_->TenantStats(tenant);
  for (size_t i = 0; i < views.size(); ++i) {
    v1::ShardStatus* shard = stats.add_shards();
    shard->set_address(views[i].address);
    shard->set_healthy(views[i].up);  // the health tracker's view, which searches follow
    if (i < usage.size() && usage[i].ok()) {
      shard->set_references(usage[i]->tenant().references());
      shard->set_bytes(usage[i]->tenant().bytes());
    }
  }
  for (v1::WorkerLoad& load : workers_->Loads()) {
    if (metrics_ != nullptr) metrics_->SetWorkerUp(load.address(), load.healthy());
    *stats.add_workers() = std::move(load);
  }
  return stats;
}

}  // namespace semshare::router
