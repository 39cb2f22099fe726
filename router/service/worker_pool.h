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
#include "common/cluster_auth.h"
#include "router/backoff.h"
#include "router/clock.h"
#include "router/worker_choice.h"
#include "semshare/v1/router.pb.h"
#include "semshare/v1/worker.grpc.pb.h"

// The router's side of the inference workers: their status (load, held references, model
// fingerprint) polled on demand and cached briefly, the choice of a worker, and the call.
namespace semshare::router {

struct WorkerPoolOptions {
  absl::Duration status_ttl = absl::Milliseconds(200);     // a status older than this is re-polled
  absl::Duration status_timeout = absl::Milliseconds(500);  // deadline of each GetStatus
  absl::Duration generate_timeout = absl::Minutes(10);      // deadline of each Generate

  absl::Status Validate() const;
};

// Thread-safe.
class WorkerPool {
 public:
  // `health` and `clock` must outlive the pool.
  static absl::StatusOr<std::unique_ptr<WorkerPool>> Create(std::vector<std::string> workers,
                                                            ClusterToken token,
                                                            const WorkerPoolOptions& options,
                                                            EndpointHealth* health, const Clock* clock);

  // The model the workers serve, from their status. Unavailable when no worker answers.
  absl::StatusOr<std::string> ModelFingerprint();

  // ChooseWorker over fresh statuses; `exclude` are indices already tried.
  absl::StatusOr<WorkerChoice> Choose(absl::string_view tenant, const std::optional<std::string>& reference_id,
                                      absl::Span<const size_t> exclude);

  // Calls worker `index`: each token chunk goes to `on_tokens` (false: the client went away);
  // returns the worker's stats. `*streamed` says whether any chunk reached `on_tokens`.
  absl::StatusOr<v1::GenerateStats> Generate(size_t index, absl::string_view tenant,
                                             const v1::WorkerGenerateRequest& request,
                                             const std::function<bool(const v1::TokenChunk&)>& on_tokens,
                                             bool* streamed);

  const std::string& address(size_t index) const { return endpoints_[index].address; }
  std::vector<v1::WorkerLoad> Loads();

 private:
  struct Endpoint {
    std::string address;
    std::unique_ptr<v1::Worker::Stub> stub;
  };
  struct State {
    std::optional<v1::WorkerStatus> status;  // last answer; empty until one came
    absl::Time polled_at = absl::InfinitePast();
    int32_t in_flight = 0;  // this router's calls outstanding there
  };

  WorkerPool(std::vector<Endpoint> endpoints, ClusterToken token, const WorkerPoolOptions& options,
             EndpointHealth* health, const Clock* clock)
      : endpoints_(std::move(endpoints)),
        token_(std::move(token)),
        options_(options),
        health_(health),
        clock_(clock),
        states_(endpoints_.size()) {}

  // Polls every worker whose status is stale and that the health tracker admits.
  void Refresh() ABSL_LOCKS_EXCLUDED(mutex_);

  const std::vector<Endpoint> endpoints_;
  const ClusterToken token_;
  const WorkerPoolOptions options_;
  EndpointHealth* const health_;
  const Clock* const clock_;
  absl::Mutex mutex_;
  std::vector<State> states_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace semshare::router

#endif  // SEMSHARE_ROUTER_SERVICE_WORKER_POOL_H_
