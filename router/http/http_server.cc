#include "router/http/http_server.h"

#include <civetweb.h>
#include <dlfcn.h>
#include <pthread.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/json.h"
#include "router/http/api_error.h"
#include "router/http/completion_request.h"
#include "router/http/completion_response.h"

// Debian builds civetweb with USE_STACK_SIZE=102400: it asks pthread_attr_setstacksize for
// 100 KiB thread stacks, and glibc refuses to start such threads (EINVAL) in a process whose
// libraries need more static TLS than that (the router links libtorch, OpenBLAS and glog).
// This definition takes precedence over glibc's for every shared library of the process and
// raises any stack size below 1 MiB to 1 MiB; larger requests pass through unchanged.
extern "C" int pthread_attr_setstacksize(pthread_attr_t* attr, size_t stack_size) noexcept {
  using SetStackSize = int (*)(pthread_attr_t*, size_t);
  static const auto glibc =
      reinterpret_cast<SetStackSize>(dlsym(RTLD_NEXT, "pthread_attr_setstacksize"));
  constexpr size_t kMinStackSize = size_t{1} << 20;
  return glibc(attr, std::max(stack_size, kMinStackSize));
}

namespace semshare::router::http {
namespace {

int SendJson(mg_connection* connection, int status, const Json& body) {
  const std::string text = body.Dump();
  const std::string length = absl::StrCat(text.size());
  mg_response_header_start(connection, status);
  mg_response_header_add(connection, "Content-Type", "application/json", -1);
  mg_response_header_add(connection, "Content-Length", length.c_str(), -1);
  if (status == 401) mg_response_header_add(connection, "WWW-Authenticate", "Bearer", -1);
  mg_response_header_send(connection);
  mg_write(connection, text.data(), text.size());
  return status;
}

int SendError(mg_connection* connection, const ApiError& error) {
  return SendJson(connection, error.http_status, error.ToJson());
}

// The request body, or nullopt when it is longer than `limit` bytes.
std::optional<std::string> ReadBody(mg_connection* connection, size_t limit) {
  const mg_request_info* info = mg_get_request_info(connection);
  if (info->content_length > static_cast<int64_t>(limit)) return std::nullopt;
  std::string body;
  char buffer[16384];
  while (true) {
    const int read = mg_read(connection, buffer, sizeof(buffer));
    if (read <= 0) break;
    body.append(buffer, static_cast<size_t>(read));
    if (body.size() > limit) return std::nullopt;
  }
  return body;
}

// One server-sent event as one HTTP chunk; false when the client is gone.
bool SendEvent(mg_connection* connection, absl::string_view event) {
  return mg_send_chunk(connection, event.data(), static_cast<unsigned>(event.size())) >= 0;
}

void StartEventStream(mg_connection* connection) {
  mg_response_header_start(connection, 200);
  mg_response_header_add(connection, "Content-Type", "text/event-stream", -1);
  mg_response_header_add(connection, "Cache-Control", "no-cache", -1);
  mg_response_header_add(connection, "Transfer-Encoding", "chunked", -1);
  mg_response_header_send(connection);
}

}  // namespace

std::string ModelIdOfDirectory(absl::string_view directory) {
  directory = absl::StripSuffix(directory, "/");
  const size_t slash = directory.rfind('/');
  return std::string(slash == absl::string_view::npos ? directory : directory.substr(slash + 1));
}

absl::Status HttpServerOptions::Validate() const {
  const size_t colon = listen_address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen_address.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http-listen must be host:port (port 0: any free one), not '", listen_address, "'"));
  }
  if (model_name.empty())
    return absl::InvalidArgumentError("the HTTP front needs a model name (--model-name)");
  if (max_body_bytes < 1024)
    return absl::InvalidArgumentError("--http-max-body-bytes must be at least 1024");
  if (threads < 1) return absl::InvalidArgumentError("--http-threads must be at least 1");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(CompletionBackend* backend,
                                                              const ApiKeys* keys,
                                                              const HttpServerOptions& options) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  static std::once_flag library_once;
  std::call_once(library_once, [] { mg_init_library(0); });

  std::unique_ptr<HttpServer> server(new HttpServer(backend, keys, options));
  const std::string threads = absl::StrCat(options.threads);
  const char* configuration[] = {"listening_ports", options.listen_address.c_str(), "num_threads",
                                 threads.c_str(), nullptr};
  mg_callbacks callbacks = {};
  mg_init_data init = {};
  init.callbacks = &callbacks;
  init.configuration_options = configuration;
  unsigned error_code = 0;
  char error_text[256] = "";
  mg_error_data error = {};
  error.code = &error_code;
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);
  server->context_ = mg_start2(&init, &error);
  if (server->context_ == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot serve HTTP on ", options.listen_address,
                                               ": ", error_text, " (code ", error_code, ")"));
  }
  mg_set_request_handler(server->context_, "/", &HttpServer::Handle, server.get());
  mg_server_port ports[4] = {};
  if (mg_get_server_ports(server->context_, 4, ports) < 1 || ports[0].port <= 0) {
    return absl::InternalError(
        absl::StrCat("HTTP on ", options.listen_address, ": no port was bound"));
  }
  server->port_ = ports[0].port;
  server->started_ = absl::ToUnixSeconds(absl::Now());
  const size_t colon = options.listen_address.rfind(':');
  server->address_ = absl::StrCat(options.listen_address.substr(0, colon), ":", server->port_);
  return server;
}

HttpServer::~HttpServer() { Shutdown(); }

void HttpServer::Shutdown() {
  if (context_ == nullptr) return;
  stopping_ = true;
  mg_stop(context_);
  context_ = nullptr;
}

std::string HttpServer::NewCompletionId() {
  absl::MutexLock lock(&mutex_);
  return absl::StrFormat("cmpl-%016x%08x", absl::Uniform<uint64_t>(random_),
                         absl::Uniform<uint32_t>(random_));
}

int HttpServer::Handle(mg_connection* connection, void* self) {
  return static_cast<HttpServer*>(self)->Route(connection);
}

int HttpServer::Route(mg_connection* connection) {
  const mg_request_info* info = mg_get_request_info(connection);
  const std::string path = info->local_uri != nullptr ? info->local_uri : "";
  const std::string method = info->request_method != nullptr ? info->request_method : "";
  const char* expected = nullptr;
  if (path == "/healthz" || path == "/v1/models") {
    expected = "GET";
  } else if (path == "/v1/completions") {
    expected = "POST";
  } else {
    return SendError(connection, RouteNotFound(path));
  }
  if (method != expected) return SendError(connection, MethodNotAllowed(method, path));
  if (path == "/healthz") return Health(connection);

  const char* authorization = mg_get_header(connection, "Authorization");
  absl::StatusOr<TenantGrant> grant =
      keys_->Authenticate(authorization != nullptr ? authorization : "");
  if (!grant.ok()) return SendError(connection, ApiErrorFromStatus(grant.status()));
  if (path == "/v1/models")
    return SendJson(connection, 200, ModelList(options_.model_name, started_));
  return Completions(connection, grant->tenant);
}

int HttpServer::Health(mg_connection* connection) {
  if (absl::Status ready = backend_->Ready(); !ready.ok()) {
    return SendError(connection, ApiErrorFromStatus(absl::UnavailableError(ready.message())));
  }
  Json body = Json::MakeObject();
  body["status"] = "ok";
  return SendJson(connection, 200, body);
}

int HttpServer::Completions(mg_connection* connection, const std::string& tenant) {
  const std::optional<std::string> body = ReadBody(connection, options_.max_body_bytes);
  if (!body.has_value()) return SendError(connection, BodyTooLarge(options_.max_body_bytes));
  absl::StatusOr<CompletionRequest> request = ParseCompletionRequest(*body, options_.model_name);
  if (!request.ok()) return SendError(connection, ApiErrorFromStatus(request.status()));
  const CompletionHeader header{NewCompletionId(), absl::ToUnixSeconds(absl::Now()),
                                options_.model_name};
  const int32_t max_tokens = request->generate.max_tokens();

  if (!request->stream) {
    std::string text;
    absl::StatusOr<v1::GenerateStats> stats =
        backend_->Generate(tenant, request->generate, [&](const v1::TokenChunk& chunk) {
          text += chunk.text();
          return !stopping_;
        });
    if (!stats.ok()) return SendError(connection, ApiErrorFromStatus(stats.status()));
    return SendJson(connection, 200, CompletionBody(header, text, max_tokens, *stats));
  }

  // Headers wait for the first tokens, so that a request refused before any (bad key on the
  // worker, cluster busy, no worker) still gets its HTTP status.
  bool streaming = false;
  absl::StatusOr<v1::GenerateStats> stats =
      backend_->Generate(tenant, request->generate, [&](const v1::TokenChunk& chunk) {
        if (stopping_) return false;
        if (!streaming) {
          StartEventStream(connection);
          streaming = true;
        }
        return chunk.text().empty() ||
               SendEvent(connection, SseEvent(StreamTextChunk(header, chunk.text())));
      });
  if (!stats.ok() && !streaming) return SendError(connection, ApiErrorFromStatus(stats.status()));
  if (!streaming) StartEventStream(connection);
  if (stats.ok()) {
    SendEvent(connection, SseEvent(StreamFinalChunk(header, max_tokens, *stats)));
    SendEvent(connection, kSseDone);
  } else if (!absl::IsCancelled(stats.status())) {
    SendEvent(connection, SseEvent(ApiErrorFromStatus(stats.status()).ToJson()));
  }
  mg_send_chunk(connection, "", 0);
  return 200;
}

}  // namespace semshare::router::http
