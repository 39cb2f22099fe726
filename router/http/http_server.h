#ifndef SEMSHARE_ROUTER_HTTP_HTTP_SERVER_H_
#define SEMSHARE_ROUTER_HTTP_HTTP_SERVER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "router/api_keys.h"
#include "router/http/completion_backend.h"

struct mg_connection;
struct mg_context;

// The OpenAI-compatible HTTP front of the router (civetweb):
//   POST /v1/completions  OpenAI completions, `stream: true` as server-sent events
//   GET  /v1/models       the served model
//   GET  /healthz         200 when the backend is ready, else 503 (no key needed)
// /v1/* need `Authorization: Bearer KEY` from the gRPC front's API keys file; the tenant comes
// from the key only. Errors use OpenAI's shape (router/http/api_error.h).
namespace semshare::router::http {

struct HttpServerOptions {
  std::string listen_address;       // IPv4 host:port; port 0 picks a free one
  std::string model_name;           // the id of GET /v1/models; requests must name it
  size_t max_body_bytes = 1 << 20;  // a larger request body is refused with 413
  int threads = 16;                 // connections served at once

  absl::Status Validate() const;
};

// The model id a model directory is served under: its last path component.
std::string ModelIdOfDirectory(absl::string_view directory);

class HttpServer {
 public:
  // `backend` and `keys` must outlive the server. Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(CompletionBackend* backend,
                                                           const ApiKeys* keys,
                                                           const HttpServerOptions& options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  const std::string& address() const { return address_; }  // host:port actually bound

  // Stops accepting; generations in flight are told the client went away; waits for them.
  void Shutdown();

 private:
  HttpServer(CompletionBackend* backend, const ApiKeys* keys, HttpServerOptions options)
      : backend_(backend), keys_(keys), options_(std::move(options)) {}

  // Each returns the HTTP status it sent.
  static int Handle(mg_connection* connection, void* self);
  int Route(mg_connection* connection);
  int Completions(mg_connection* connection, const std::string& tenant);
  int Health(mg_connection* connection);
  std::string NewCompletionId();

  CompletionBackend* const backend_;
  const ApiKeys* const keys_;
  const HttpServerOptions options_;
  mg_context* context_ = nullptr;
  int port_ = 0;
  std::string address_;
  int64_t started_ = 0;  // Unix seconds; the model's "created"
  std::atomic<bool> stopping_{false};
  absl::Mutex mutex_;
  absl::BitGen random_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace semshare::router::http

#endif  // SEMSHARE_ROUTER_HTTP_HTTP_SERVER_H_
