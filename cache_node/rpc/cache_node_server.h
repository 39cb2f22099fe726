#ifndef SEMSHARE_CACHE_NODE_RPC_CACHE_NODE_SERVER_H_
#define SEMSHARE_CACHE_NODE_RPC_CACHE_NODE_SERVER_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cache_node/cache_node.h"
#include "cache_node/rpc/cache_node_service.h"
#include "cache_node/rpc/metrics.h"
#include "common/cluster_auth.h"

namespace semshare::cache_node {

struct CacheNodeServerOptions {
  std::string listen_address;                           // host:port; port 0 picks a free one
  int64_t max_message_bytes = kDefaultMaxMessageBytes;  // larger messages -> RESOURCE_EXHAUSTED
  CacheNodeServiceOptions service;

  absl::Status Validate() const;
};

// A running gRPC server with the CacheNode service, grpc.health.v1 and server reflection.
class CacheNodeServer {
 public:
  // `node` and `metrics` (nullable) must outlive the server. Unavailable if the address
  // cannot be bound.
  static absl::StatusOr<std::unique_ptr<CacheNodeServer>> Start(
      CacheNode* node, ClusterToken token, const CacheNodeServerOptions& options,
      CacheNodeMetrics* metrics);
  ~CacheNodeServer();

  int port() const { return port_; }
  // host:port actually bound (the listen address with port 0 replaced).
  const std::string& address() const { return address_; }

  // Stops accepting calls and waits for those in flight, cancelling them after `grace`.
  void Shutdown(absl::Duration grace = absl::Seconds(5));

 private:
  CacheNodeServer(std::unique_ptr<CacheNodeService> service, std::unique_ptr<grpc::Server> server,
                  int port, std::string address);

  std::unique_ptr<CacheNodeService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_;
  std::string address_;
  bool shut_down_ = false;
};

}  // namespace semshare::cache_node

#endif  // SEMSHARE_CACHE_NODE_RPC_CACHE_NODE_SERVER_H_
