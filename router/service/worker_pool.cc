#include "router/service/worker_pool.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>

#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/rpc/cluster_metadata.h"
#include "common/rpc/grpc_status.h"

namespace semshare::router {

absl::Status WorkerPoolOptions::Validate() const {
  if (status_ttl < absl::ZeroDuration())
    return absl::InvalidArgumentError("worker status ttl must be >= 0");
  if (status_timeout <= absl::ZeroDuration() || generate_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("worker call deadlines must be positive");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<WorkerPool>> WorkerPool::Create(
    const std::vector<std::string>& workers, ClusterToken token, const WorkerPoolOptions& options,
    EndpointHealth* health, const Clock* clock) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  if (workers.empty() && !options.allow_empty)
    return absl::InvalidArgumentError("no workers given (--workers W,...)");
  absl::flat_hash_set<std::string> seen;
  for (const std::string& address : workers) {
    if (!seen.insert(address).second) {
      return absl::InvalidArgumentError(absl::StrCat("worker ", address, " is listed twice"));
    }
  }
  std::unique_ptr<WorkerPool> pool(new WorkerPool(std::move(token), options, health, clock));
  absl::MutexLock lock(&pool->mutex_);
  for (const std::string& address : workers) pool->AddLocked(address);
  return pool;
}

void WorkerPool::AddLocked(const std::string& address) {
  auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                           ClusterChannelArguments());
  endpoints_.push_back(std::make_unique<Endpoint>(Endpoint{address, v1::Worker::NewStub(channel)}));
  states_.emplace_back();
}

const WorkerPool::Endpoint* WorkerPool::EndpointAt(size_t index) const {
  absl::MutexLock lock(&mutex_);
  return endpoints_[index].get();
}

std::string WorkerPool::address(size_t index) const { return EndpointAt(index)->address; }

void WorkerPool::SetWorkers(const std::vector<std::string>& workers) {
  const absl::flat_hash_set<std::string> listed(workers.begin(), workers.end());
  absl::MutexLock lock(&mutex_);
  absl::flat_hash_set<std::string> known;
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    known.insert(endpoints_[i]->address);
    states_[i].retired = !listed.contains(endpoints_[i]->address);
  }
  for (const std::string& address : workers) {
    if (known.insert(address).second) AddLocked(address);
  }
}

std::vector<std::string> WorkerPool::Members() const {
  absl::MutexLock lock(&mutex_);
  std::vector<std::string> members;
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    if (!states_[i].retired) members.push_back(endpoints_[i]->address);
  }
  return members;
}

void WorkerPool::Refresh() {
  const absl::Time now = clock_->Now();
  std::vector<std::pair<size_t, const Endpoint*>> stale;
  size_t count = 0;
  {
    absl::MutexLock lock(&mutex_);
    count = endpoints_.size();
    for (size_t i = 0; i < count; ++i) {
      if (!states_[i].retired && now - states_[i].polled_at >= options_.status_ttl) {
        stale.emplace_back(i, endpoints_[i].get());
      }
    }
  }
  std::vector<std::optional<v1::WorkerStatus>> answers(count);
  std::vector<bool> polled(count, false);
  std::vector<std::thread> calls;
  for (const auto& [i, endpoint] : stale) {
    if (!health_->Admit(endpoint->address)) continue;
    polled[i] = true;
    calls.emplace_back([&, i = i, endpoint = endpoint] {
      grpc::ClientContext context;
      AddClusterMetadata(token_, "router", &context);
      context.set_deadline(absl::ToChronoTime(absl::Now() + options_.status_timeout));
      v1::WorkerStatus status;
      if (endpoint->stub->GetStatus(&context, v1::GetWorkerStatusRequest(), &status).ok()) {
        answers[i] = std::move(status);
        health_->RecordSuccess(endpoint->address);
      } else {
        health_->RecordFailure(endpoint->address);
      }
    });
  }
  for (std::thread& call : calls) call.join();
  absl::MutexLock lock(&mutex_);
  for (size_t i = 0; i < count; ++i) {
    if (!polled[i]) continue;
    states_[i].polled_at = now;
    states_[i].status = std::move(answers[i]);  // empty after a failure: not a candidate
  }
}

absl::StatusOr<std::string> WorkerPool::ModelFingerprint() {
  Refresh();
  absl::MutexLock lock(&mutex_);
  for (const State& state : states_) {
    if (state.status.has_value() && !state.status->model_fingerprint().empty()) {
      return state.status->model_fingerprint();
    }
  }
  return absl::UnavailableError("no worker answered GetStatus");
}

absl::StatusOr<WorkerChoice> WorkerPool::Choose(absl::string_view tenant,
                                                const std::optional<std::string>& reference_id,
                                                absl::Span<const size_t> exclude) {
  Refresh();
  absl::MutexLock lock(&mutex_);
  std::vector<WorkerView> views(endpoints_.size());
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    const State& state = states_[i];
    WorkerView& view = views[i];
    view.address = endpoints_[i]->address;
    view.up = !state.retired && state.status.has_value() && health_->IsUp(view.address);
    view.in_flight = state.in_flight;
    if (!state.status.has_value()) continue;
    view.capacity = state.status->max_concurrency();
    if (state.status->kv_budget_bytes() > 0) {
      view.kv_reserved_share = static_cast<double>(state.status->kv_reserved_bytes()) /
                               static_cast<double>(state.status->kv_budget_bytes());
    }
    // Workers report bare ids; the router's ids are random, so an id names one tenant's reference.
    for (const std::string& id : state.status->cached_reference_ids()) {
      view.cached_references.insert(CachedReferenceKey(tenant, id));
    }
  }
  WorkerRequest request;
  request.tenant = std::string(tenant);
  request.reference_id = reference_id;
  request.exclude = exclude;
  absl::StatusOr<WorkerChoice> choice = ChooseWorker(views, request);
  if (choice.ok()) ++states_[choice->index].in_flight;  // released by Generate
  return choice;
}

absl::StatusOr<v1::GenerateStats> WorkerPool::Generate(
    size_t index, absl::string_view tenant, const v1::WorkerGenerateRequest& request,
    const std::function<bool(const v1::TokenChunk&)>& on_tokens, bool* streamed) {
  *streamed = false;
  grpc::ClientContext context;
  AddClusterMetadata(token_, tenant, &context);
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.generate_timeout));
  const Endpoint* endpoint = EndpointAt(index);
  std::unique_ptr<grpc::ClientReader<v1::WorkerGenerateResponse>> reader =
      endpoint->stub->Generate(&context, request);
  v1::WorkerGenerateResponse response;
  std::optional<v1::GenerateStats> stats;
  bool client_gone = false;
  while (reader->Read(&response)) {
    if (response.has_tokens() && !client_gone) {
      *streamed = true;
      if (!on_tokens(response.tokens())) {
        client_gone = true;
        context.TryCancel();
      }
    } else if (response.has_stats()) {
      stats = response.stats();
    }
  }
  const grpc::Status status = reader->Finish();
  {
    absl::MutexLock lock(&mutex_);
    --states_[index].in_flight;
  }
  if (client_gone) return absl::CancelledError("the client went away");
  const std::string& address = endpoint->address;
  if (!status.ok()) {
    // Only failures of the transport say the worker is unwell; its own refusals do not.
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      health_->RecordFailure(address);
    }
    return FromGrpcStatus(status);
  }
  health_->RecordSuccess(address);
  if (!stats.has_value())
    return absl::InternalError(absl::StrCat("worker ", address, " sent no stats"));
  return *std::move(stats);
}

std::vector<v1::WorkerLoad> WorkerPool::Loads() {
  Refresh();
  std::vector<v1::WorkerLoad> loads;
  absl::MutexLock lock(&mutex_);
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    if (states_[i].retired) continue;
    v1::WorkerLoad load;
    load.set_address(endpoints_[i]->address);
    load.set_healthy(states_[i].status.has_value() && health_->IsUp(endpoints_[i]->address));
    if (states_[i].status.has_value()) {
      load.set_active_requests(states_[i].status->active_requests());
      load.set_queued_requests(states_[i].status->queued_requests());
    }
    loads.push_back(std::move(load));
  }
  return loads;
}

}  // namespace semshare::router
