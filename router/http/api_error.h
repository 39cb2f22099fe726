#ifndef SEMSHARE_ROUTER_HTTP_API_ERROR_H_
#define SEMSHARE_ROUTER_HTTP_API_ERROR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/json.h"

// Errors of the OpenAI-compatible HTTP front, in OpenAI's shape:
//   {"error": {"message": ..., "type": ..., "param": ... | null, "code": ... | null}}
// with the HTTP status a client library expects for each kind of failure.
namespace semshare::router::http {

struct ApiError {
  int http_status = 500;
  std::string type;   // "invalid_request_error", "rate_limit_error", "server_error"
  std::string code;   // empty: null
  std::string param;  // the request field at fault; empty: null
  std::string message;

  Json ToJson() const;
};

// InvalidArgument naming the request field at fault; ApiErrorFromStatus puts it in "param".
absl::Status InvalidField(absl::string_view param, absl::string_view message);

// 400 InvalidArgument/OutOfRange, 401 Unauthenticated, 403 PermissionDenied, 404 NotFound,
// 429 ResourceExhausted, 503 Unavailable/DeadlineExceeded, 500 anything else.
ApiError ApiErrorFromStatus(const absl::Status& status);

ApiError MethodNotAllowed(absl::string_view method, absl::string_view path);
ApiError RouteNotFound(absl::string_view path);
ApiError BodyTooLarge(size_t limit_bytes);

}  // namespace semshare::router::http

#endif  // SEMSHARE_ROUTER_HTTP_API_ERROR_H_
