#ifndef SEMSHARE_COMMON_RPC_SERVER_START_H_
#define SEMSHARE_COMMON_RPC_SERVER_START_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace semshare {

// A started gRPC server and where it listens (port 0 in the listen address resolved).
struct BoundServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::string address;  // the listen address's host with the bound port
};

// Adds `listen_address` (plaintext) to a builder whose services and options are set, and starts
// it. Unavailable when the address cannot be bound.
absl::StatusOr<BoundServer> StartServer(grpc::ServerBuilder& builder,
                                        const std::string& listen_address);

// Marks the health service NOT_SERVING, lets calls in flight finish within `grace`, then waits.
void ShutdownServer(grpc::Server& server, absl::Duration grace);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_RPC_SERVER_START_H_
