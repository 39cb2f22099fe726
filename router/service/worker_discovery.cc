#include "router/service/worker_discovery.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace semshare::router {

namespace {
constexpr absl::string_view kScheme = "dns:";
}  // namespace

bool IsWorkerDnsName(absl::string_view workers) { return absl::StartsWith(workers, kScheme); }

absl::StatusOr<std::vector<std::string>> ResolveWorkers(absl::string_view dns_name) {
  absl::string_view rest = dns_name;
  const size_t colon = rest.rfind(':');
  int port = 0;
  if (!absl::ConsumePrefix(&rest, kScheme) || colon == absl::string_view::npos ||
      colon <= kScheme.size() || !absl::SimpleAtoi(dns_name.substr(colon + 1), &port) ||
      port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker name '", dns_name, "' is not dns:HOST:PORT (e.g. dns:semshare-worker:7100)"));
  }
  const std::string host(dns_name.substr(kScheme.size(), colon - kScheme.size()));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot resolve workers' host '", host, "': ", gai_strerror(rc)));
  }
  std::vector<std::string> addresses;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr, text,
                sizeof(text));
      addresses.push_back(absl::StrCat(text, ":", port));
    } else if (a->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr, text,
                sizeof(text));
      addresses.push_back(absl::StrCat("[", text, "]:", port));
    }
  }
  freeaddrinfo(found);
  std::sort(addresses.begin(), addresses.end());
  addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
  if (addresses.empty())
    return absl::NotFoundError(absl::StrCat("workers' host '", host, "' has no address"));
  return addresses;
}

}  // namespace semshare::router
