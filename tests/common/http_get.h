#ifndef SEMSHARE_TESTS_COMMON_HTTP_GET_H_
#define SEMSHARE_TESTS_COMMON_HTTP_GET_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>

namespace semshare::testing_http {

// An HTTP/1.0 GET of `path` on 127.0.0.1:`port` over a plain socket: the whole response
// (status line, headers, body), or "" when nothing accepts the connection.
inline std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  std::string response;
  if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
    char buffer[8192];
    ssize_t n;
    while ((n = read(fd, buffer, sizeof(buffer))) > 0)
      response.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return response;
}

}  // namespace semshare::testing_http

#endif  // SEMSHARE_TESTS_COMMON_HTTP_GET_H_
