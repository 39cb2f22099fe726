#include "common/rpc/metrics_endpoint.h"

#include <netdb.h>
#include <netinet/in.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace semshare {
namespace {

constexpr size_t kMaxRequestBytes = 8192;

absl::Status CannotServe(const std::string& address, absl::string_view why) {
  return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address, ": ", why));
}

// A listening TCP socket for host:port, or the reason there is none.
absl::StatusOr<int> Listen(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics address ", address, " is not host:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const std::string port = address.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc =
          getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return CannotServe(address, gai_strerror(rc));
  }
  std::string error = "no address";
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      error = std::strerror(errno);
      continue;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 64) != 0) {
      error = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) return CannotServe(address, error);
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t length = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) return 0;
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

void WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

MetricsEndpoint::MetricsEndpoint(int listen_fd, int port,
                                 std::vector<std::shared_ptr<prometheus::Collectable>> collectables)
    : listen_fd_(listen_fd), port_(port), collectables_(std::move(collectables)) {
  thread_ = std::thread([this] { AcceptLoop(); });
}

MetricsEndpoint::~MetricsEndpoint() {
  shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
  thread_.join();
  close(listen_fd_);
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& listen_address,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables) {
  if (listen_address.empty()) return absl::InvalidArgumentError("--metrics-listen is required");
  absl::StatusOr<int> fd = Listen(listen_address);
  if (!fd.ok()) return fd.status();
  return std::unique_ptr<MetricsEndpoint>(
      new MetricsEndpoint(*fd, BoundPort(*fd), std::move(collectables)));
}

void MetricsEndpoint::StopCollecting() {
  absl::MutexLock lock(&mutex_);
  collectables_.clear();
}

void MetricsEndpoint::AcceptLoop() {
  while (true) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down
    }
    Answer(fd);
    close(fd);
  }
}

void MetricsEndpoint::Answer(int fd) {
  // A client that never finishes its request cannot hold the endpoint for long.
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  std::string request;
  char buffer[1024];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < kMaxRequestBytes) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    request.append(buffer, static_cast<size_t>(n));
  }
  const absl::string_view line = absl::string_view(request).substr(0, request.find("\r\n"));
  if (!absl::StartsWith(line, "GET /metrics ") && !absl::StartsWith(line, "GET /metrics?")) {
    WriteAll(fd, "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  const std::string body = Exposition();
  WriteAll(fd, absl::StrCat(
                   "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: ",
                   body.size(), "\r\nConnection: close\r\n\r\n", body));
}

std::string MetricsEndpoint::Exposition() {
  std::vector<prometheus::MetricFamily> families;
  {
    absl::MutexLock lock(&mutex_);  // StopCollecting waits for a scrape in progress
    for (const auto& collectable : collectables_) {
      std::vector<prometheus::MetricFamily> collected = collectable->Collect();
      families.insert(families.end(), std::make_move_iterator(collected.begin()),
                      std::make_move_iterator(collected.end()));
    }
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace semshare
