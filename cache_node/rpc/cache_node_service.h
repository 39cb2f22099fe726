#ifndef SEMSHARE_CACHE_NODE_RPC_CACHE_NODE_SERVICE_H_
#define SEMSHARE_CACHE_NODE_RPC_CACHE_NODE_SERVICE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "cache_node/cache_node.h"
#include "cache_node/rpc/metrics.h"
#include "common/cluster_auth.h"
#include "common/rpc/cluster_metadata.h"
#include "semshare/v1/cache_node.grpc.pb.h"

namespace semshare::cache_node {

struct CacheNodeServiceOptions {
  int64_t max_reference_bytes = 0;  // declared KV bytes of one PutReference; > 0
  int64_t max_chunk_bytes = kMaxKVChunkBytes;
};

// semshare.v1.CacheNode over the domain CacheNode: authenticates the tenant from call
// metadata, translates protos to domain calls and absl::Status to grpc::Status. No logic of its
// own beyond stream framing (kv_stream.h).
class CacheNodeService final : public v1::CacheNode::Service {
 public:
  // `node` and `metrics` (nullable) must outlive the service.
  CacheNodeService(CacheNode* node, ClusterToken token, CacheNodeServiceOptions options,
                   CacheNodeMetrics* metrics)
      : node_(node), token_(std::move(token)), options_(options), metrics_(metrics) {}

  grpc::Status PutReference(grpc::ServerContext* context,
                            grpc::ServerReader<v1::PutReferenceRequest>* reader,
                            v1::PutReferenceResponse* response) override;
  grpc::Status FindSimilar(grpc::ServerContext* context, const v1::FindSimilarRequest* request,
                           v1::FindSimilarResponse* response) override;
  grpc::Status FetchKV(grpc::ServerContext* context, const v1::FetchKVRequest* request,
                       grpc::ServerWriter<v1::FetchKVResponse>* writer) override;
  grpc::Status DeleteReference(grpc::ServerContext* context,
                               const v1::DeleteReferenceRequest* request,
                               v1::DeleteReferenceResponse* response) override;
  grpc::Status ListReferences(grpc::ServerContext* context,
                              const v1::ListReferencesRequest* request,
                              v1::ListReferencesResponse* response) override;
  grpc::Status GetStats(grpc::ServerContext* context, const v1::GetStatsRequest* request,
                        v1::GetStatsResponse* response) override;

 private:
  // Authenticates, runs `body` with the caller's tenant, records metrics, translates the status.
  template <typename Body>
  grpc::Status Serve(absl::string_view method, grpc::ServerContext* context, Body body);

  absl::Status Put(const std::string& tenant, grpc::ServerReader<v1::PutReferenceRequest>* reader,
                   v1::PutReferenceResponse* response);

  CacheNode* node_;
  ClusterToken token_;
  CacheNodeServiceOptions options_;
  CacheNodeMetrics* metrics_;
};

}  // namespace semshare::cache_node

#endif  // SEMSHARE_CACHE_NODE_RPC_CACHE_NODE_SERVICE_H_
