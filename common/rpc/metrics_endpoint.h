#ifndef SEMSHARE_COMMON_RPC_METRICS_ENDPOINT_H_
#define SEMSHARE_COMMON_RPC_METRICS_ENDPOINT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace prometheus {
class Collectable;
class Exposer;
}  // namespace prometheus

namespace semshare {

// Prometheus's HTTP GET /metrics for one process, serving the collectables given at start.
class MetricsEndpoint {
 public:
  // Binds `listen_address` (host:port, port 0: any free port). Unavailable, naming the
  // address, when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& listen_address, std::vector<std::shared_ptr<prometheus::Collectable>> collectables);
  // Stops serving (civetweb takes up to ~2 s to stop its threads).
  ~MetricsEndpoint();

  int port() const { return port_; }

  // Scrapes after this see none of the collectables, so whatever they read may go away first.
  void StopCollecting();

 private:
  MetricsEndpoint(std::unique_ptr<prometheus::Exposer> exposer,
                  std::vector<std::shared_ptr<prometheus::Collectable>> collectables, int port);

  std::unique_ptr<prometheus::Exposer> exposer_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  int port_;
};

}  // namespace semshare

#endif  // SEMSHARE_COMMON_RPC_METRICS_ENDPOINT_H_
