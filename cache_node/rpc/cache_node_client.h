#ifndef SEMSHARE_CACHE_NODE_RPC_CACHE_NODE_CLIENT_H_
#define SEMSHARE_CACHE_NODE_RPC_CACHE_NODE_CLIENT_H_

#include <grpcpp/channel.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "cache_node/cache_node.h"
#include "common/cluster_auth.h"
#include "common/rpc/cluster_metadata.h"
#include "semshare/v1/cache_node.grpc.pb.h"

namespace semshare::cache_node {

// A client of one cache node, with the domain API's shape: every call names the tenant
// (sent as authenticated cluster metadata) and the model. Thread-safe.
class CacheNodeClient {
 public:
  struct Options {
    int64_t max_message_bytes = kDefaultMaxMessageBytes;
    int64_t max_chunk_bytes = kMaxKVChunkBytes;
    absl::Duration timeout = absl::Seconds(60);  // deadline of each call
  };

  static absl::StatusOr<std::unique_ptr<CacheNodeClient>> Create(const std::string& address,
                                                                 ClusterToken token,
                                                                 const Options& options);
  static absl::StatusOr<std::unique_ptr<CacheNodeClient>> Create(const std::string& address,
                                                                 ClusterToken token) {
    return Create(address, std::move(token), Options());
  }

  absl::Status Put(const ReferenceScope& scope, NewReference reference);
  absl::StatusOr<FindResult> FindSimilar(const ReferenceScope& scope, const TokenCodes& target,
                                         absl::Span<const float> sketch, int32_t top_k);
  // Layers reach the sink as they arrive, checksum-verified.
  absl::Status FetchKV(const ReferenceScope& scope, const std::string& reference_id,
                       absl::Span<const int32_t> source,
                       const std::vector<std::vector<int32_t>>& token_subsets,
                       const std::function<absl::Status(FetchedLayer)>& sink);
  absl::Status Delete(const ReferenceScope& scope, const std::string& reference_id);
  absl::StatusOr<std::vector<ReferenceInfo>> List(const ReferenceScope& scope);
  absl::StatusOr<v1::GetStatsResponse> GetStats(const std::string& tenant);

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  CacheNodeClient(std::shared_ptr<grpc::Channel> channel, ClusterToken token, Options options);
  void Prepare(const std::string& tenant, grpc::ClientContext* context) const;

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CacheNode::Stub> stub_;
  ClusterToken token_;
  Options options_;
};

}  // namespace semshare::cache_node

#endif  // SEMSHARE_CACHE_NODE_RPC_CACHE_NODE_CLIENT_H_
