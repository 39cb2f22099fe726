#ifndef SEMSHARE_TESTS_COMMON_LOOPBACK_SERVER_H_
#define SEMSHARE_TESTS_COMMON_LOOPBACK_SERVER_H_

#include <arpa/inet.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
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

// A loopback address where connections are refused, for as long as the object lives: a TCP
// socket bound to a free port and never listening. Holding the port matters: a port that was
// free a moment ago can be taken by another test's server (ctest runs tests in parallel, and
// gRPC binds with SO_REUSEPORT), and then the "dead" endpoint answers. This socket sets no
// SO_REUSEPORT, so nobody else can bind the port while it is held.
class DeadEndpoint {
 public:
  DeadEndpoint() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t length = sizeof(addr);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
      std::cerr << "DeadEndpoint: cannot bind a loopback port\n";
      std::abort();
    }
    address_ = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  }
  ~DeadEndpoint() { close(fd_); }
  DeadEndpoint(const DeadEndpoint&) = delete;
  DeadEndpoint& operator=(const DeadEndpoint&) = delete;

  const std::string& address() const { return address_; }

 private:
  int fd_ = -1;
  std::string address_;
};

}  // namespace semshare

#endif  // SEMSHARE_TESTS_COMMON_LOOPBACK_SERVER_H_
