#ifndef SEMSHARE_TESTS_COMMON_LOOPBACK_SERVER_H_
#define SEMSHARE_TESTS_COMMON_LOOPBACK_SERVER_H_

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"

namespace semshare {

// A gRPC server on a free loopback port serving `service` (null: serving nothing), for fakes
// in tests; `*address` is where it listens.
inline std::unique_ptr<grpc::Server> StartOnLoopback(grpc::Service* service, std::string* address) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  if (service != nullptr) builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  *address = absl::StrCat("127.0.0.1:", port);
  return server;
}

}  // namespace semshare

#endif  // SEMSHARE_TESTS_COMMON_LOOPBACK_SERVER_H_
