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
#include "inference_worker/service/proto_convert.h"

namespace semshare::worker {
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
    *stats_message.mutable_stats() = StatsToProto(reply, address_);
    writer->Write(stats_message);
    return absl::OkStatus();
  });
}

grpc::Status WorkerService::GetStatus(grpc::ServerContext* context,
                                      const v1::GetWorkerStatusRequest*,
                                      v1::WorkerStatus* response) {
  return Counted("GetStatus", [&]() -> absl::Status {
    SEMSHARE_RETURN_IF_ERROR(AuthenticateCall(token_, *context).status());
    *response = StatusToProto(worker_->Load());
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
