#ifndef SEMSHARE_ROUTER_SERVICE_WORKER_POOL_H_
#define SEMSHARE_ROUTER_SERVICE_WORKER_POOL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "common/cluster_auth.h"
#include "router/backoff.h"
#include "router/worker_choice.h"
#include "semshare/v1/router.pb.h"
#include "semshare/v1/worker.grpc.pb.h"

// The router's side of the inference workers: their status (load, held references, model
// fingerprint) polled on demand and cached briefly, the choice of a worker, and the call.
namespace semshare::router {

struct WorkerPoolOptions {
  absl::Duration status_ttl = absl::Milliseconds(200);      // a status older than this is re-polled
  absl::Duration status_timeout = absl::Milliseconds(500);  // deadline of each GetStatus
  absl::Duration generate_timeout = absl::Minutes(10);      // deadline of each Generate
  bool allow_empty = false;  // true when the workers are discovered (SetWorkers) rather than listed

  absl::Status Validate() const;
};

// Thread-safe.
class WorkerPool {
 public:
  // `health` and `clock` must outlive the pool.
  static absl::StatusOr<std::unique_ptr<WorkerPool>> Create(const std::vector<std::string>& workers,
                                                            ClusterToken token,
                                                            const WorkerPoolOptions& options,
                                                            EndpointHealth* health,
                                                            const Clock* clock);

  // The model the workers serve, from their status. Unavailable when no worker answers.
  absl::StatusOr<std::string> ModelFingerprint();

  // ChooseWorker over fresh statuses; `exclude` are indices already tried.
  absl::StatusOr<WorkerChoice> Choose(absl::string_view tenant,
                                      const std::optional<std::string>& reference_id,
                                      absl::Span<const size_t> exclude);

  // Calls worker `index`: each token chunk goes to `on_tokens` (false: the client went away);
  // returns the worker's stats. `*streamed` says whether any chunk reached `on_tokens`.
  absl::StatusOr<v1::GenerateStats> Generate(
      size_t index, absl::string_view tenant, const v1::WorkerGenerateRequest& request,
      const std::function<bool(const v1::TokenChunk&)>& on_tokens, bool* streamed);

  std::string address(size_t index) const;
  std::vector<v1::WorkerLoad> Loads();

  // The workers are now `workers` (from discovery): new addresses join, addresses no longer
  // listed are retired (never chosen again; calls already running there finish), and a retired
  // address that comes back rejoins. Indices stay valid.
  void SetWorkers(const std::vector<std::string>& workers) ABSL_LOCKS_EXCLUDED(mutex_);
  // Addresses chosen from now on, in index order.
  std::vector<std::string> Members() const ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  struct Endpoint {
    std::string address;
    std::unique_ptr<v1::Worker::Stub> stub;
  };
  struct State {
    std::optional<v1::WorkerStatus> status;  // last answer; empty until one came
    absl::Time polled_at = absl::InfinitePast();
    int32_t in_flight = 0;  // this router's calls outstanding there
    bool retired = false;   // no longer listed by discovery
  };

  WorkerPool(ClusterToken token, const WorkerPoolOptions& options, EndpointHealth* health,
             const Clock* clock)
      : token_(std::move(token)), options_(options), health_(health), clock_(clock) {}

  // Polls every worker whose status is stale and that the health tracker admits.
  void Refresh() ABSL_LOCKS_EXCLUDED(mutex_);
  void AddLocked(const std::string& address) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Endpoints are never destroyed before the pool, so a pointer taken under the lock stays valid.
  const Endpoint* EndpointAt(size_t index) const ABSL_LOCKS_EXCLUDED(mutex_);

  const ClusterToken token_;
  const WorkerPoolOptions options_;
  EndpointHealth* const health_;
  const Clock* const clock_;
  mutable absl::Mutex mutex_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_ ABSL_GUARDED_BY(mutex_);
  std::vector<State> states_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace semshare::router

#endif  // SEMSHARE_ROUTER_SERVICE_WORKER_POOL_H_
