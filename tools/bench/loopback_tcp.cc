#include "tools/bench/loopback_tcp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"

namespace semshare::bench {
namespace {

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::Status Errno(const char* what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

absl::StatusOr<double> MeasureLoopbackTcpGBps(int64_t bytes, int64_t write_bytes) {
  Fd listener(socket(AF_INET, SOCK_STREAM, 0));
  if (listener.get() < 0) return Errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  socklen_t length = sizeof(addr);
  if (bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return Errno("bind");
  if (listen(listener.get(), 1) != 0) return Errno("listen");
  if (getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    return Errno("getsockname");
  }
  Fd sender(socket(AF_INET, SOCK_STREAM, 0));
  if (connect(sender.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return Errno("connect");
  Fd receiver(accept(listener.get(), nullptr, nullptr));
  if (receiver.get() < 0) return Errno("accept");

  const std::string payload(static_cast<size_t>(write_bytes), 'k');
  const auto start = std::chrono::steady_clock::now();
  std::thread send_thread([&] {
    int64_t sent = 0;
    while (sent < bytes) {
      const size_t n = static_cast<size_t>(std::min(write_bytes, bytes - sent));
      const ssize_t w = write(sender.get(), payload.data(), n);
      if (w <= 0) return;
      sent += w;
    }
  });
  std::string buffer(static_cast<size_t>(write_bytes), '\0');
  int64_t received = 0;
  while (received < bytes) {
    const ssize_t r = read(receiver.get(), buffer.data(), buffer.size());
    if (r <= 0) break;
    received += r;
  }
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  send_thread.join();
  if (received != bytes) return absl::InternalError("loopback transfer ended early");
  return static_cast<double>(bytes) / elapsed.count() / 1e9;
}

}  // namespace semshare::bench
