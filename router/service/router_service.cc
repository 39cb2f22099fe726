#include "router/service/router_service.h"

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_status.h"
#include "common/rpc/rpc_metrics.h"
#include "common/rpc/server_start.h"
#include "common/status_macros.h"

namespace semshare::router {

absl::StatusOr<std::string> RouterService::Tenant(const grpc::ServerContext& context) const {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find("authorization");
  if (found == metadata.end())
    return absl::UnauthenticatedError("missing authorization: Bearer KEY");
  absl::StatusOr<TenantGrant> grant =
      keys_->Authenticate(absl::string_view(found->second.data(), found->second.size()));
  if (!grant.ok()) return grant.status();
  return grant->tenant;
}

grpc::Status RouterService::Generate(grpc::ServerContext* context,
                                     const v1::GenerateRequest* request,
                                     grpc::ServerWriter<v1::GenerateResponse>* writer) {
  return Counted("Generate", [&]() -> absl::Status {
    SEMSHARE_ASSIGN_OR_RETURN(const std::string tenant, Tenant(*context));
    SEMSHARE_ASSIGN_OR_RETURN(
        v1::GenerateStats stats,
        router_->Generate(tenant, *request, [writer](const v1::TokenChunk& chunk) {
          v1::GenerateResponse response;
          *response.mutable_tokens() = chunk;
          return writer->Write(response);
        }));
    v1::GenerateResponse response;
    *response.mutable_stats() = std::move(stats);
    writer->Write(response);
    return absl::OkStatus();
  });
}

grpc::Status RouterService::GetStats(grpc::ServerContext* context, const v1::GetRouterStatsRequest*,
                                     v1::RouterStats* response) {
  return Counted("GetStats", [&]() -> absl::Status {
    SEMSHARE_ASSIGN_OR_RETURN(const std::string tenant, Tenant(*context));
    *response = router_->Stats(tenant);
    return absl::OkStatus();
  });
}

template <typename Body>
grpc::Status RouterService::Counted(absl::string_view method, Body body) {
  return ToGrpcStatus(RecordedCall(router_->metrics(), method, body));
}

absl::Status RouterServerOptions::Validate() const {
  if (listen_address.empty())
    return absl::InvalidArgumentError("listen address is empty (--listen host:port)");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RouterServer>> RouterServer::Start(
    Router* router, const ApiKeys* keys, const RouterServerOptions& options) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  grpc::EnableDefaultHealthCheckService(true);
  auto service = std::make_unique<RouterService>(router, keys);
  grpc::ServerBuilder builder;
  builder.RegisterService(service.get());
  absl::StatusOr<BoundServer> bound = StartServer(builder, options.listen_address);
  if (!bound.ok()) return bound.status();
  return std::unique_ptr<RouterServer>(
      new RouterServer(std::move(service), std::move(bound->server), bound->port, bound->address));
}

void RouterServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  ShutdownServer(*server_, grace);
}

RouterServer::~RouterServer() { Shutdown(); }

}  // namespace semshare::router
