#include "inference_worker/service/worker_service.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_status.h"
#include "common/rpc/rpc_metrics.h"
#include "common/rpc/server_start.h"
#include "common/status_macros.h"

namespace semshare::worker {
namespace {

WorkerRequest FromProto(const v1::WorkerGenerateRequest& request, std::string tenant) {
  WorkerRequest out;
  out.tenant = std::move(tenant);
  out.model_fingerprint = request.model_fingerprint();
  out.prompt.assign(request.prompt_token_ids().begin(), request.prompt_token_ids().end());
  if (request.has_sampling()) {
    out.sampling.max_tokens = request.sampling().max_tokens();
    out.sampling.temperature = request.sampling().temperature();
    out.sampling.top_p = request.sampling().top_p() > 0 ? request.sampling().top_p() : 1.0;
    out.sampling.seed = request.sampling().seed();
  }
  if (request.has_reuse()) {
    const v1::ReuseSource& reuse = request.reuse();
    ReuseSource source;
    source.shard = reuse.shard();
    source.reference_id = reuse.reference_id();
    const v1::TokenMapping& m = reuse.mapping();
    source.mapping.similarity = m.similarity();
    source.mapping.source.assign(m.source().begin(), m.source().end());
    source.mapping.distance.assign(m.distance().begin(), m.distance().end());
    source.mapping.unmatched.assign(source.mapping.source.size(), 0);
    for (int32_t i : m.unmatched()) {
      if (i >= 0 && i < static_cast<int32_t>(source.mapping.unmatched.size()))
        source.mapping.unmatched[i] = 1;
    }
    source.mapping.num_unmatched = m.unmatched_size();
    out.reuse = std::move(source);
  }
  if (request.has_store()) {
    out.store = StoreTarget{request.store().shard(), request.store().reference_id(),
                            request.store().tenant_byte_budget()};
  }
  out.similarity_threshold = request.similarity_threshold();
  return out;
}

}  // namespace

grpc::Status WorkerService::Generate(grpc::ServerContext* context,
                                     const v1::WorkerGenerateRequest* request,
                                     grpc::ServerWriter<v1::WorkerGenerateResponse>* writer) {
  return Counted("Generate", [&]() -> absl::Status {
    SEMSHARE_ASSIGN_OR_RETURN(std::string tenant, AuthenticateCall(token_, *context));
    WorkerRequest call = FromProto(*request, std::move(tenant));
    // One chunk a token, written as it is chosen.
    std::string streamed_text;
    call.on_token = [&](int32_t token, const std::string& text) {
      v1::WorkerGenerateResponse chunk;
      chunk.mutable_tokens()->add_token_ids(token);
      chunk.mutable_tokens()->set_text(text);
      streamed_text += text;
      return writer->Write(chunk);
    };
    SEMSHARE_ASSIGN_OR_RETURN(const WorkerReply reply, worker_->Generate(call));
    if (reply.text.size() > streamed_text.size() && absl::StartsWith(reply.text, streamed_text)) {
      // Text held back at the end (an incomplete character the last token did not finish).
      v1::WorkerGenerateResponse rest;
      rest.mutable_tokens()->set_text(reply.text.substr(streamed_text.size()));
      if (!writer->Write(rest)) return absl::CancelledError("client went away");
    }
    v1::WorkerGenerateResponse stats_message;
    v1::GenerateStats* stats = stats_message.mutable_stats();
    stats->set_cache_hit(reply.cache_hit);
    stats->set_reference_id(reply.reference_id);
    stats->set_similarity(reply.similarity);
    stats->set_recompute_share(reply.recompute_share);
    stats->set_kv_kept_share(reply.kv_kept_share);
    stats->set_ttft_ms(reply.ttft_ms);
    stats->set_latency_ms(reply.latency_ms);
    stats->set_prompt_tokens(reply.prompt_tokens);
    stats->set_completion_tokens(static_cast<int64_t>(reply.tokens.size()));
    stats->mutable_stages()->set_fetch_ms(reply.fetch_ms);
    stats->mutable_stages()->set_recompute_ms(reply.recompute_ms);
    stats->mutable_stages()->set_decode_ms(reply.decode_ms);
    stats->set_worker(address_);
    stats->set_shard(reply.shard);
    stats->set_worker_local_hit(reply.local_hit);
    stats->set_bypassed(reply.bypassed);
    stats->set_bypass_reason(reply.bypass_reason);
    writer->Write(stats_message);
    return absl::OkStatus();
  });
}

grpc::Status WorkerService::GetStatus(grpc::ServerContext* context,
                                      const v1::GetWorkerStatusRequest*,
                                      v1::WorkerStatus* response) {
  return Counted("GetStatus", [&]() -> absl::Status {
    SEMSHARE_RETURN_IF_ERROR(AuthenticateCall(token_, *context).status());
    const WorkerLoad load = worker_->Load();
    response->set_model_fingerprint(load.model_fingerprint);
    response->set_active_requests(load.active_requests);
    response->set_queued_requests(load.queued_requests);
    response->set_max_concurrency(load.max_concurrency);
    for (const std::string& id : load.cached_reference_ids) response->add_cached_reference_ids(id);
    response->set_pending_stores(load.pending_stores);
    return absl::OkStatus();
  });
}

template <typename Body>
grpc::Status WorkerService::Counted(absl::string_view method, Body body) {
  return ToGrpcStatus(RecordedCall(worker_->metrics(), method, body));
}

absl::Status WorkerServerOptions::Validate() const {
  if (listen_address.empty()) return absl::InvalidArgumentError("listen address is empty");
  if (max_message_bytes < (int64_t{1} << 20) || max_message_bytes > (int64_t{1} << 30)) {
    return absl::InvalidArgumentError("max message bytes must be in [1 MiB, 1 GiB]");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<WorkerServer>> WorkerServer::Start(
    InferenceWorker* worker, ClusterToken token, const WorkerServerOptions& options) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  grpc::EnableDefaultHealthCheckService(true);
  auto service = std::make_unique<WorkerService>(worker, std::move(token), options.listen_address);
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  builder.RegisterService(service.get());
  absl::StatusOr<BoundServer> bound = StartServer(builder, options.listen_address);
  if (!bound.ok()) return bound.status();
  service->set_address(bound->address);
  return std::unique_ptr<WorkerServer>(
      new WorkerServer(std::move(service), std::move(bound->server), bound->port, bound->address));
}

void WorkerServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  ShutdownServer(*server_, grace);
}

WorkerServer::~WorkerServer() { Shutdown(); }

}  // namespace semshare::worker
