#ifndef SEMSHARE_ROUTER_SERVICE_WORKER_DISCOVERY_H_
#define SEMSHARE_ROUTER_SERVICE_WORKER_DISCOVERY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// Workers found through DNS, for deployments where they come and go (a Kubernetes Deployment
// behind a headless Service resolves to the addresses of its ready pods).
namespace semshare::router {

// True for a `--workers` value of the form "dns:HOST:PORT".
bool IsWorkerDnsName(absl::string_view workers);

// Every address HOST resolves to (IPv4 as A.B.C.D:PORT, IPv6 as [ADDR]:PORT), sorted and
// without repeats. InvalidArgument for a malformed name, NotFound when HOST resolves to nothing.
absl::StatusOr<std::vector<std::string>> ResolveWorkers(absl::string_view dns_name);

}  // namespace semshare::router

#endif  // SEMSHARE_ROUTER_SERVICE_WORKER_DISCOVERY_H_
