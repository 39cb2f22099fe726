#include "inference_worker/service/worker.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/allocator.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "common/stop_strings.h"
#include "inference_worker/engine/engine.h"
#include "inference_worker/service/generation.h"

namespace semshare::worker {

absl::Status WorkerOptions::Validate() const {
  if (max_batch < 1) return absl::InvalidArgumentError("max batch must be >= 1");
  if (max_queue < 0) return absl::InvalidArgumentError("max queued requests must be >= 0");
  if (kv_budget_bytes < 0) return absl::InvalidArgumentError("KV budget bytes must be >= 0");
  if (prefill_chunk_tokens < 0)
    return absl::InvalidArgumentError("prefill chunk tokens must be >= 0");
  if (recompute_layers_per_piece < 1)
    return absl::InvalidArgumentError("recompute layers per piece must be >= 1");
  if (local_cache_bytes < 0) return absl::InvalidArgumentError("local cache bytes must be >= 0");
  if (stores.max_pending < 0) return absl::InvalidArgumentError("max pending stores must be >= 0");
  if (stores.max_pending_bytes < 0)
    return absl::InvalidArgumentError("max pending store bytes must be >= 0");
  return absl::OkStatus();
}

namespace {

// As vLLM: a stop string, a stop token (EOS included) or the end of text is "stop"; reaching
// max_tokens otherwise is "length".
std::string FinishReason(bool stop_string, const std::vector<int32_t>& tokens,
                         const SamplingOptions& sampling) {
  if (stop_string) return "stop";
  const std::vector<int32_t>& stops = sampling.stop_tokens;
  if (!tokens.empty() && std::find(stops.begin(), stops.end(), tokens.back()) != stops.end())
    return "stop";
  return static_cast<int32_t>(tokens.size()) >= sampling.max_tokens ? "length" : "stop";
}

}  // namespace

int64_t DefaultKvBudgetBytes() {
  const int64_t pages = sysconf(_SC_PHYS_PAGES);
  const int64_t page_size = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return int64_t{4} << 30;
  return pages * page_size / 4;
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
      local_(options.local_cache_bytes),
      stores_(engine, reuse.ecache, source, &local_, fingerprint_, options.stores, metrics) {
  SchedulerOptions scheduling;
  scheduling.max_batch = options.max_batch;
  scheduling.max_queue = options.max_queue;
  scheduling.kv_budget_bytes =
      options.kv_budget_bytes > 0 ? options.kv_budget_bytes : DefaultKvBudgetBytes();
  SchedulerObserver observer;
  if (metrics_ != nullptr) {
    observer.on_load = [metrics](const SchedulerLoad& load) {
      metrics->SetLoad(load.running, load.queued, load.kv_reserved_bytes, load.kv_budget_bytes);
    };
    observer.on_decode_step = [metrics](int32_t batch) { metrics->RecordDecodeStep(batch); };
  }
  scheduler_ = std::make_unique<Scheduler>(
      scheduling,
      [engine](absl::Span<ScheduledRequest* const> batch) {
        return Generation::DecodeBatch(*engine, batch);
      },
      std::move(observer));
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

InferenceWorker::~InferenceWorker() { scheduler_.reset(); }

absl::StatusOr<WorkerReply> InferenceWorker::Generate(const WorkerRequest& request) {
  const SteadyClock::time_point received = SteadyClock::now();
  if (request.tenant.empty()) return absl::InvalidArgumentError("request has no tenant");
  SamplingOptions sampling;
  sampling.max_tokens = request.sampling.max_tokens;
  sampling.temperature = request.sampling.temperature;
  sampling.top_p = request.sampling.top_p;
  sampling.seed = request.sampling.seed;
  for (int64_t eos : engine_->model().config().eos_token_ids)
    sampling.stop_tokens.push_back(static_cast<int32_t>(eos));
  const int64_t vocab = engine_->model().config().vocab_size;
  for (int32_t token : request.sampling.stop_token_ids) {
    if (token < 0 || token >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stop_token_ids: ", token, " is not a token id (the vocabulary has ", vocab, ")"));
    }
    sampling.stop_tokens.push_back(token);
  }
  SEMSHARE_RETURN_IF_ERROR(engine_->CheckRequest(request.prompt, sampling));
  const Tokenizer* tokenizer = engine_->model().tokenizer();
  std::optional<StopStringMatcher> stop_matcher;
  if (!request.sampling.stop_strings.empty()) {
    if (tokenizer == nullptr)
      return absl::InvalidArgumentError("stop: stop strings need the model's tokenizer");
    SEMSHARE_ASSIGN_OR_RETURN(stop_matcher,
                              StopStringMatcher::Create(request.sampling.stop_strings));
  }

  ReuseDecision decision;
  if (request.reuse.has_value()) {
    ReuseCheck check;
    check.worker_fingerprint = fingerprint_;
    check.reference_fingerprint = request.model_fingerprint;
    check.prompt_tokens = static_cast<int64_t>(request.prompt.size());
    check.mapping = &request.reuse->mapping;
    check.threshold = request.similarity_threshold > 0 ? request.similarity_threshold
                                                       : reuse_->similarity_threshold;
    decision = DecideReuse(check, [&](int64_t reference_tokens) {
      return engine_->BypassReason(check.prompt_tokens, reference_tokens, *reuse_);
    });
  }

  GenerationContext context;
  context.engine = engine_;
  context.reuse = reuse_.get();
  context.options = &options_;
  context.source = source_;
  context.local = &local_;
  context.stores = &stores_;
  context.metrics = metrics_;
  context.wake = [scheduler = scheduler_.get()] { scheduler->Wake(); };
  WorkerRequest queued = request;
  queued.on_token = nullptr;  // called here, on the caller's thread
  auto channel = std::make_shared<TokenChannel>();
  auto generation = std::make_shared<Generation>(context, std::move(queued), std::move(decision),
                                                 sampling, received, channel);
  if (absl::Status submitted = scheduler_->Submit(generation); !submitted.ok()) {
    if (metrics_ != nullptr && absl::IsResourceExhausted(submitted)) metrics_->RecordRejected();
    return submitted;
  }

  // Tokens go out as they are chosen, with the text each adds (held back while it ends in an
  // incomplete character, or in what may become a stop string; the service sends what is left
  // after the last token). Stop strings are matched here, on the caller's thread, so the
  // scheduler's loop does no decoding; a match stops the generation at its next iteration.
  std::optional<IncrementalDetokenizer> detokenizer;
  if (tokenizer != nullptr) detokenizer.emplace(tokenizer);
  std::optional<double> ttft_ms;
  bool cancelled = false;
  size_t taken = 0;       // tokens up to the one that completed a stop string
  std::string stop_text;  // with a stop string: the text sent so far
  std::optional<absl::StatusOr<WorkerReply>> end;
  while (!end.has_value()) {
    std::vector<int32_t> tokens;
    channel->Take(&tokens, &end);
    for (int32_t token : tokens) {
      if (stop_matcher.has_value() && stop_matcher->stopped()) break;  // chosen after the stop
      ++taken;
      if (!ttft_ms.has_value()) ttft_ms = MillisSince(received);
      if (cancelled || (!request.on_token && !stop_matcher.has_value())) continue;
      std::string text = detokenizer.has_value() ? detokenizer->Next(token) : "";
      if (stop_matcher.has_value()) {
        StopStringMatcher::Step step = stop_matcher->Feed(text);
        text = std::move(step.text);
        stop_text += text;
        if (step.stopped) {
          generation->StopDecoding();
          scheduler_->Wake();
        }
      }
      if (request.on_token && !request.on_token(token, text)) {
        cancelled = true;  // the scheduler drops it at its next iteration and frees its KV
        generation->Cancel();
        scheduler_->Wake();
      }
    }
  }
  generation.reset();
  ReleaseFreeMemory();
  if (cancelled) return absl::CancelledError("the client went away");
  if (!end->ok()) return end->status();
  WorkerReply reply = **std::move(end);
  const bool stopped_at_string = stop_matcher.has_value() && stop_matcher->stopped();
  if (stopped_at_string) {
    reply.tokens.resize(std::min(reply.tokens.size(), taken));
    reply.text = std::move(stop_text);
  } else if (tokenizer != nullptr) {
    reply.text = tokenizer->Decode(reply.tokens);
  }
  reply.finish_reason = FinishReason(stopped_at_string, reply.tokens, sampling);
  reply.latency_ms = MillisSince(received);
  reply.ttft_ms = ttft_ms.value_or(reply.latency_ms);
  return reply;
}

void InferenceWorker::WaitForStores() { stores_.WaitIdle(); }

WorkerLoad InferenceWorker::Load() const {
  WorkerLoad load;
  load.model_fingerprint = fingerprint_;
  const SchedulerLoad scheduled = scheduler_->Load();
  load.active_requests = scheduled.running;
  load.batch_size = scheduled.decoding;
  load.queued_requests = scheduled.queued;
  load.max_batch = scheduled.max_batch;
  load.kv_reserved_bytes = scheduled.kv_reserved_bytes;
  load.kv_budget_bytes = scheduled.kv_budget_bytes;
  load.cached_reference_ids = local_.ReferenceIds();
  load.cached_bytes = local_.bytes();
  load.stores = stores_.counts();
  return load;
}

}  // namespace semshare::worker
