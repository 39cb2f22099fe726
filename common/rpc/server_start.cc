#include "common/rpc/server_start.h"

#include "absl/strings/str_cat.h"

namespace semshare {

absl::StatusOr<BoundServer> StartServer(grpc::ServerBuilder& builder,
                                        const std::string& listen_address) {
  BoundServer bound;
  builder.AddListeningPort(listen_address, grpc::InsecureServerCredentials(), &bound.port);
  bound.server = builder.BuildAndStart();
  if (bound.server == nullptr || bound.port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen_address));
  }
  const size_t colon = listen_address.rfind(':');
  bound.address = absl::StrCat(listen_address.substr(0, colon), ":", bound.port);
  return bound;
}

void ShutdownServer(grpc::Server& server, absl::Duration grace) {
  server.GetHealthCheckService()->Shutdown();
  server.Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server.Wait();
}

}  // namespace semshare
