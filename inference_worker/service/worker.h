#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_WORKER_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_WORKER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/token_mapping.h"
#include "inference_worker/service/local_reference_cache.h"
#include "inference_worker/service/reference_source.h"
#include "inference_worker/service/scheduler.h"
#include "inference_worker/service/store_queue.h"
#include "inference_worker/service/worker_metrics.h"

// The inference worker's domain layer (DESIGN.md, "The cluster" and "Serving under load"):
// requests go through the scheduler, which batches their decodes and cuts their prefills into
// pieces; a hit reuses a reference's KV fetched from a shard while it recomputes. No gRPC here.
namespace semshare {
class Engine;
struct ReuseOptions;
}  // namespace semshare

namespace semshare::worker {

struct WorkerOptions {
  int32_t max_batch = 16;  // requests admitted at once (prefilling or decoding)
  int32_t max_queue = 64;  // requests waiting per tenant; past it: ResourceExhausted
  // KV bytes admitted requests may reserve; 0: derived from the machine (DefaultKvBudgetBytes).
  int64_t kv_budget_bytes = 0;
  // Tokens per piece of a full prefill between two decode steps (see docs/benchmarks.md,
  // "serve": the TPOT of running decodes against the TTFT of a new prompt); 0: whole prompts.
  int64_t prefill_chunk_tokens = 256;
  int64_t recompute_layers_per_piece = 1;          // layers per piece of a selective recompute
  int64_t local_cache_bytes = int64_t{512} << 20;  // references' KV held for repeat hits
  StoreQueueOptions stores;
  // Recompute layer l while layer l+1 is in transfer; false: the whole transfer first (on a
  // machine whose few cores the transfer and the recompute would share).
  bool overlap_fetch = true;

  absl::Status Validate() const;
};

// A quarter of the machine's memory: the KV budget when none is given.
int64_t DefaultKvBudgetBytes();

// The reference a hit reuses, as the router found it.
struct ReuseSource {
  std::string shard;
  std::string reference_id;
  TokenMapping mapping;  // target token i reuses reference token mapping.source[i]
};

struct Sampling {
  int32_t max_tokens = 64;
  double temperature = 0;  // 0: greedy
  double top_p = 1.0;
  uint64_t seed = 0;
  // OpenAI's `stop`: generation ends where one appears in the text, which ends before it
  // (at most kMaxStopStrings; needs the model's tokenizer).
  std::vector<std::string> stop_strings;
  // vLLM's `stop_token_ids`: generation ends after one of these is chosen (kept in the output),
  // as at the model's EOS.
  std::vector<int32_t> stop_token_ids;
};

struct WorkerRequest {
  std::string tenant;             // from authenticated call metadata, never from the message
  std::string model_fingerprint;  // of the reference's KV; must be the worker's model's
  std::vector<int32_t> prompt;
  Sampling sampling;
  std::optional<ReuseSource> reuse;     // absent: a miss
  std::optional<StorePlacement> store;  // absent: nothing stored
  double similarity_threshold = 0;      // 0: the worker's default
  // Called on the caller's thread with each token as soon as it is chosen, and the text it
  // adds (empty while a character is incomplete, or without a tokenizer); may be empty.
  // Returning false ends the request with CANCELLED and frees its KV. The reply's text is the
  // whole, authoritative text.
  std::function<bool(int32_t token, const std::string& text)> on_token;
};

struct WorkerReply {
  std::vector<int32_t> tokens;
  std::string text;  // empty when the model has no tokenizer; before the stop string if one hit
  // "stop": a stop string, a stop token or EOS ended it; "length": max_tokens did.
  std::string finish_reason;
  bool cache_hit = false;
  bool local_hit = false;  // the reference's KV came from the local cache: no transfer
  bool bypassed = false;   // the reference was not reused: reuse was predicted not to pay
  std::string bypass_reason;
  std::string reference_id;  // reused (hit) or stored (miss with a store target)
  std::string shard;
  std::string miss_reason;  // why a named reference was not reused
  double similarity = 0;
  double recompute_share = 1;
  double kv_kept_share = 1;
  int64_t prompt_tokens = 0;
  // Prompt tokens whose KV was reused rather than recomputed: on a hit, prompt_tokens less the
  // tokens recomputed (recompute_share of them); 0 on a miss or a bypass.
  int64_t cached_tokens = 0;
  // Counted from Generate's call: the first (last) token handed to on_token (or chosen).
  double ttft_ms = 0;
  double latency_ms = 0;
  double queue_ms = 0;  // waiting for the scheduler to admit the request
  double fetch_ms =
      0;  // waiting for the reference's KV (transfer overlapped with recompute excluded)
  double recompute_ms = 0;  // prefill or selective recompute, rearrangement and retention
  double decode_ms = 0;
};

struct WorkerLoad {
  std::string model_fingerprint;
  int32_t active_requests = 0;  // admitted: prefilling or decoding
  int32_t batch_size = 0;       // decoding
  int32_t queued_requests = 0;
  int32_t max_batch = 0;
  int64_t kv_reserved_bytes = 0;
  int64_t kv_budget_bytes = 0;
  std::vector<std::string> cached_reference_ids;  // most recently used first
  int64_t cached_bytes = 0;
  StoreCounts stores;
};

// Thread-safe. Misses store their prompt as a new reference on a background thread, after the
// reply.
class InferenceWorker {
 public:
  // `engine` and `source` must outlive the worker, and `metrics` too unless it is null (none
  // recorded).
  static absl::StatusOr<std::unique_ptr<InferenceWorker>> Create(const Engine* engine,
                                                                 const ReuseOptions& reuse,
                                                                 ReferenceSource* source,
                                                                 const WorkerOptions& options,
                                                                 WorkerMetrics* metrics = nullptr);
  // Ends running and queued requests (Unavailable), then finishes the stores already queued.
  ~InferenceWorker();

  // Queues the request and blocks until it ends, calling on_token as tokens come
  // (ResourceExhausted at once when its tenant's queue is full). A reference that cannot be
  // reused (another model, below the threshold, not found, a broken transfer) makes the
  // request a miss, never a failure; one predicted not to pay (ReuseOptions::bypass) is not
  // fetched and makes it a bypass (served as a miss, nothing stored). An error inside the
  // engine fails this request only (Internal with the message) and frees what it held.
  absl::StatusOr<WorkerReply> Generate(const WorkerRequest& request);

  WorkerLoad Load() const;
  // Blocks until every queued store has been attempted.
  void WaitForStores();
  const std::string& model_fingerprint() const { return fingerprint_; }
  // For the service's call counts; null when there are none.
  WorkerMetrics* metrics() const { return metrics_; }

 private:
  InferenceWorker(const Engine* engine, const ReuseOptions& reuse, ReferenceSource* source,
                  const WorkerOptions& options, WorkerMetrics* metrics);

  const Engine* engine_;
  const std::unique_ptr<const ReuseOptions> reuse_;
  ReferenceSource* source_;
  const WorkerOptions options_;
  WorkerMetrics* const metrics_;
  const std::string fingerprint_;
  LocalReferenceCache local_;
  StoreQueue stores_;
  std::unique_ptr<Scheduler> scheduler_;  // last: stopped first
};

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_WORKER_H_
