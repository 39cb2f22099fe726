#ifndef SEMSHARE_COMMON_RPC_METRICS_ENDPOINT_H_
#define SEMSHARE_COMMON_RPC_METRICS_ENDPOINT_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace prometheus {
class Collectable;
}  // namespace prometheus

namespace semshare {

// HTTP GET /metrics (Prometheus text format 0.0.4) for one process, serving the collectables
// given at start; any other path is 404. One thread answers one scrape at a time.
//
// Not prometheus::Exposer: its civetweb starts threads with 100 KiB stacks, smaller than the
// static TLS of a process that links libtorch (OpenBLAS, glog: ~106 KiB), so pthread_create
// fails there ("null context when constructing CivetServer").
class MetricsEndpoint {
 public:
  // Binds `listen_address` (host:port; port 0: any free port; empty host: every interface).
  // Unavailable, naming the address, when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& listen_address,
      std::vector<std::shared_ptr<prometheus::Collectable>> collectables);
  // Stops listening and waits for a scrape in progress.
  ~MetricsEndpoint();

  int port() const { return port_; }

  // Scrapes after this see none of the collectables, so whatever they read may go away first.
  void StopCollecting();

 private:
  MetricsEndpoint(int listen_fd, int port,
                  std::vector<std::shared_ptr<prometheus::Collectable>> collectables);
  void AcceptLoop();
  void Answer(int fd);
  std::string Exposition();

  const int listen_fd_;
  const int port_;
  absl::Mutex mutex_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_ ABSL_GUARDED_BY(mutex_);
  std::thread thread_;
};

}  // namespace semshare

#endif  // SEMSHARE_COMMON_RPC_METRICS_ENDPOINT_H_
