#ifndef SEMSHARE_COMMON_RPC_CLUSTER_METADATA_H_
#define SEMSHARE_COMMON_RPC_CLUSTER_METADATA_H_

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/channel_arguments.h>

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/cluster_auth.h"

namespace semshare {

// Byte chunks of KV in PutReference and FetchKV carry at most this much data.
inline constexpr int64_t kMaxKVChunkBytes = int64_t{4} << 20;
// Default largest message a cluster process accepts: a chunk plus its framing, or a header
// with the token ids and codes of a long prompt.
inline constexpr int64_t kDefaultMaxMessageBytes = int64_t{64} << 20;

// Client side: the internal call metadata naming the tenant, vouched for by the cluster token.
void AddClusterMetadata(const ClusterToken& token, absl::string_view tenant,
                        grpc::ClientContext* context);

// Server side: the tenant of an internal call, or Unauthenticated.
absl::StatusOr<std::string> AuthenticateCall(const ClusterToken& token,
                                             const grpc::ServerContextBase& context);

// HTTP/2 settings for bulk KV transfer: the largest frames HTTP/2 allows and a large stream
// window, so a 4 MiB chunk is a few frames and the sender is not stalled on flow control.
inline constexpr int kHttp2MaxFrameBytes = (1 << 24) - 1;
inline constexpr int kHttp2StreamWindowBytes = 64 << 20;
// Calls `set` with each such argument (servers apply them with ServerBuilder::AddChannelArgument).
void ForEachBulkTransferArgument(const std::function<void(const char*, int)>& set);

// Channel settings for calls inside the cluster: message size limits that fit a KV chunk, and
// the bulk transfer settings above.
grpc::ChannelArguments ClusterChannelArguments(int64_t max_message_bytes = kDefaultMaxMessageBytes);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_RPC_CLUSTER_METADATA_H_
