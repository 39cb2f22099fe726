#ifndef SEMSHARE_ROUTER_SERVICE_ROUTER_SERVICE_H_
#define SEMSHARE_ROUTER_SERVICE_ROUTER_SERVICE_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "router/api_keys.h"
#include "router/service/router.h"
#include "semshare/v1/router.grpc.pb.h"

namespace semshare::router {

// semshare.v1.Router over a Router: authenticates `authorization: Bearer KEY`, translates
// protos, nothing else.
class RouterService final : public v1::Router::Service {
 public:
  // `router` and `keys` must outlive the service.
  RouterService(Router* router, const ApiKeys* keys) : router_(router), keys_(keys) {}

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status GetStats(grpc::ServerContext* context, const v1::GetRouterStatsRequest* request,
                        v1::RouterStats* response) override;

 private:
  absl::StatusOr<std::string> Tenant(const grpc::ServerContext& context) const;
  // Runs `body`, counts the call in the router's metrics and translates its status.
  template <typename Body>
  grpc::Status Counted(absl::string_view method, Body body);

  Router* router_;
  const ApiKeys* keys_;
};

struct RouterServerOptions {
  std::string listen_address;  // host:port; port 0 picks a free one

  absl::Status Validate() const;
};

// A running gRPC server with the Router service and grpc.health.v1.
class RouterServer {
 public:
  // `router` and `keys` must outlive the server. Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<RouterServer>> Start(Router* router, const ApiKeys* keys,
                                                             const RouterServerOptions& options);
  ~RouterServer();

  int port() const { return port_; }
  const std::string& address() const { return address_; }  // host:port actually bound

  // Stops accepting calls and waits for those in flight, cancelling them after `grace`.
  void Shutdown(absl::Duration grace = absl::Seconds(5));

 private:
  RouterServer(std::unique_ptr<RouterService> service, std::unique_ptr<grpc::Server> server,
               int port, std::string address)
      : service_(std::move(service)),
        server_(std::move(server)),
        port_(port),
        address_(std::move(address)) {}

  std::unique_ptr<RouterService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_;
  std::string address_;
  bool shut_down_ = false;
};

}  // namespace semshare::router

#endif  // SEMSHARE_ROUTER_SERVICE_ROUTER_SERVICE_H_
