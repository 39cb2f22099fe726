#ifndef SEMSHARE_ROUTER_CLIENT_SEMSHARE_CLIENT_H_
#define SEMSHARE_ROUTER_CLIENT_SEMSHARE_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/error_code.h"  // IWYU pragma: export

namespace grpc {
class Channel;
}  // namespace grpc

// The semshare client SDK: a prompt goes to the router, tokens come back.
//
//   SemshareClient::Options options;
//   options.router_address = "127.0.0.1:7000";
//   options.api_key = "sk-...";
//   auto client = SemshareClient::Create(options);              // StatusOr
//   auto result = (*client)->Generate("Why is the sky blue?", {}); // StatusOr<GenerateResult>
//   std::cout << result->text << " hit=" << result->stats.cache_hit;
//
// Every call carries `authorization: Bearer <api_key>` and the configured deadline. Errors are
// absl::Status with the router's code and message (UNAUTHENTICATED for a refused key,
// UNAVAILABLE when the router cannot be reached, DEADLINE_EXCEEDED past the deadline). A refusal
// the caller may act on also has a machine-readable reason, semshare::ErrorCode(status):
//   if (semshare::ErrorCode(result.status()) == semshare::kContextLengthExceeded) { shorten }
namespace semshare::client {

// Per-generate knobs; the defaults are greedy decoding with the router's similarity threshold.
struct GenerateOptions {
  int32_t max_tokens = 64;
  std::optional<double> similarity_threshold;  // unset: the router's default
  double temperature = 0;                      // 0: greedy
  double top_p = 1.0;
  uint64_t seed = 0;
};

// Time spent in each stage of a request, in milliseconds.
struct StageTimes {
  double tokenize_ms = 0;
  double search_ms = 0;
  double fetch_ms = 0;
  double recompute_ms = 0;
  double decode_ms = 0;
};

// How the router served a request (the stats message that ends every Generate stream).
struct GenerateStats {
  bool cache_hit = false;
  std::string reference_id;  // the reused reference (hit) or the new one (miss)
  double similarity = 0;
  double recompute_share = 0;
  double kv_kept_share = 0;
  double ttft_ms = 0;
  double latency_ms = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  StageTimes stages;
  std::string worker;  // address of the worker that served it
  std::string shard;   // address of the shard holding the reference
  bool worker_local_hit = false;
  bool bypassed = false;  // a reference matched but reusing it would not have paid
  std::string bypass_reason;
};

// Tokens as the router streams them.
struct GenerateChunk {
  std::vector<int32_t> token_ids;
  std::string text;
};

struct GenerateResult {
  std::string text;
  std::vector<int32_t> token_ids;
  GenerateStats stats;
};

struct ShardStatus {
  std::string address;
  bool healthy = false;
  int64_t references = 0;  // the caller tenant's references on it
  int64_t bytes = 0;
};

struct WorkerLoad {
  std::string address;
  bool healthy = false;
  int32_t active_requests = 0;
  int32_t queued_requests = 0;
};

// The router's counters for the caller's tenant, and the health of its shards and workers.
struct RouterStats {
  int64_t requests = 0;
  int64_t hits = 0;
  int64_t misses = 0;
  int64_t failures = 0;
  std::vector<ShardStatus> shards;
  std::vector<WorkerLoad> workers;
};

// Receives each chunk as it arrives; a non-OK status cancels the call and is returned.
using ChunkCallback = std::function<absl::Status(const GenerateChunk&)>;

// A client of one router. Thread-safe: calls may run concurrently on one client.
class SemshareClient {
 public:
  struct Options {
    std::string router_address;  // host:port
    std::string api_key;
    absl::Duration deadline = absl::Minutes(5);  // of each call
  };

  // InvalidArgument for an empty address or key or a non-positive deadline. Does not connect:
  // an unreachable router shows up as UNAVAILABLE on the first call.
  static absl::StatusOr<std::unique_ptr<SemshareClient>> Create(const Options& options);
  ~SemshareClient();

  // Waits for the whole response.
  absl::StatusOr<GenerateResult> Generate(const std::string& prompt,
                                          const GenerateOptions& options);
  // Streams chunks to `on_chunk` as they are decoded; returns the same assembled result.
  absl::StatusOr<GenerateResult> Generate(const std::string& prompt, const GenerateOptions& options,
                                          const ChunkCallback& on_chunk);
  absl::StatusOr<RouterStats> Stats();

 private:
  SemshareClient(std::shared_ptr<grpc::Channel> channel, Options options);

  std::shared_ptr<grpc::Channel> channel_;
  struct StubHolder;
  std::unique_ptr<StubHolder> stub_;
  Options options_;
};

}  // namespace semshare::client

#endif  // SEMSHARE_ROUTER_CLIENT_SEMSHARE_CLIENT_H_
