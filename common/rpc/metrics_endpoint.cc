#include "common/rpc/metrics_endpoint.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"

namespace semshare {

MetricsEndpoint::MetricsEndpoint(std::unique_ptr<prometheus::Exposer> exposer,
                                 std::vector<std::shared_ptr<prometheus::Collectable>> collectables, int port)
    : exposer_(std::move(exposer)), collectables_(std::move(collectables)), port_(port) {}

MetricsEndpoint::~MetricsEndpoint() {
  StopCollecting();
  exposer_.reset();
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& listen_address, std::vector<std::shared_ptr<prometheus::Collectable>> collectables) {
  if (listen_address.empty()) return absl::InvalidArgumentError("--metrics-listen is required");
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen_address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", listen_address, ": ", e.what()));
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", listen_address));
  for (const auto& collectable : collectables) exposer->RegisterCollectable(collectable);
  return std::unique_ptr<MetricsEndpoint>(new MetricsEndpoint(std::move(exposer), std::move(collectables), ports[0]));
}

void MetricsEndpoint::StopCollecting() {
  for (const auto& collectable : collectables_) exposer_->RemoveCollectable(collectable);
  collectables_.clear();
}

}  // namespace semshare
