#include "cache_node/rpc/cache_node_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/rpc/server_start.h"

namespace semshare::cache_node {

absl::Status CacheNodeServerOptions::Validate() const {
  if (listen_address.empty()) return absl::InvalidArgumentError("listen address is empty");
  if (max_message_bytes < kMaxKVChunkBytes + (int64_t{1} << 20)) {
    return absl::InvalidArgumentError(absl::StrCat("max message bytes must be at least ",
                                                   kMaxKVChunkBytes + (int64_t{1} << 20),
                                                   " (a 4 MiB chunk and its framing)"));
  }
  if (max_message_bytes > (int64_t{1} << 30)) {
    return absl::InvalidArgumentError("max message bytes must be at most 1 GiB");
  }
  if (service.max_reference_bytes <= 0) {
    return absl::InvalidArgumentError("max reference bytes must be > 0");
  }
  if (service.max_chunk_bytes <= 0 || service.max_chunk_bytes > kMaxKVChunkBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("max chunk bytes must be in (0, ", kMaxKVChunkBytes, "]"));
  }
  return absl::OkStatus();
}

CacheNodeServer::CacheNodeServer(std::unique_ptr<CacheNodeService> service,
                                 std::unique_ptr<grpc::Server> server, int port,
                                 std::string address)
    : service_(std::move(service)),
      server_(std::move(server)),
      port_(port),
      address_(std::move(address)) {}

absl::StatusOr<std::unique_ptr<CacheNodeServer>> CacheNodeServer::Start(
    CacheNode* node, ClusterToken token, const CacheNodeServerOptions& options,
    CacheNodeMetrics* metrics) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  // Process-wide switches; they only affect servers built after them.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  auto service =
      std::make_unique<CacheNodeService>(node, std::move(token), options.service, metrics);
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  ForEachBulkTransferArgument(
      [&builder](const char* name, int value) { builder.AddChannelArgument(name, value); });
  builder.RegisterService(service.get());
  absl::StatusOr<BoundServer> bound = StartServer(builder, options.listen_address);
  if (!bound.ok()) return bound.status();
  return std::unique_ptr<CacheNodeServer>(new CacheNodeServer(
      std::move(service), std::move(bound->server), bound->port, std::move(bound->address)));
}

void CacheNodeServer::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  ShutdownServer(*server_, grace);
}

CacheNodeServer::~CacheNodeServer() { Shutdown(); }

}  // namespace semshare::cache_node
