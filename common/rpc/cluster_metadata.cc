#include "common/rpc/cluster_metadata.h"

#include <optional>

namespace semshare {
namespace {

std::optional<std::string> FindMetadata(const grpc::ServerContextBase& context, const char* key) {
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find(key);
  if (it == metadata.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

void AddClusterMetadata(const ClusterToken& token, absl::string_view tenant,
                        grpc::ClientContext* context) {
  context->AddMetadata(kClusterTokenMetadataKey, token.value());
  context->AddMetadata(kTenantMetadataKey, std::string(tenant));
}

absl::StatusOr<std::string> AuthenticateCall(const ClusterToken& token,
                                             const grpc::ServerContextBase& context) {
  const std::optional<std::string> presented = FindMetadata(context, kClusterTokenMetadataKey);
  const std::optional<std::string> tenant = FindMetadata(context, kTenantMetadataKey);
  return AuthenticateTenant(token, presented ? &*presented : nullptr, tenant ? &*tenant : nullptr);
}

void ForEachBulkTransferArgument(const std::function<void(const char*, int)>& set) {
  set(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, kHttp2MaxFrameBytes);
  set(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kHttp2StreamWindowBytes);
}

grpc::ChannelArguments ClusterChannelArguments(int64_t max_message_bytes) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(max_message_bytes));
  args.SetMaxSendMessageSize(static_cast<int>(max_message_bytes));
  ForEachBulkTransferArgument([&args](const char* name, int value) { args.SetInt(name, value); });
  return args;
}

}  // namespace semshare
