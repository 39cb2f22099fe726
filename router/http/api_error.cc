#include "router/http/api_error.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/error_code.h"

namespace semshare::router::http {
namespace {

constexpr absl::string_view kParamPayload = "type.semshare.dev/http.param";

Json NullIfEmpty(const std::string& value) { return value.empty() ? Json() : Json(value); }

}  // namespace

Json ApiError::ToJson() const {
  Json error = Json::MakeObject();
  error["message"] = message;
  error["type"] = type;
  error["param"] = NullIfEmpty(param);
  error["code"] = NullIfEmpty(code);
  Json body = Json::MakeObject();
  body["error"] = std::move(error);
  return body;
}

absl::Status InvalidField(absl::string_view param, absl::string_view message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kParamPayload, absl::Cord(param));
  return status;
}

ApiError ApiErrorFromStatus(const absl::Status& status) {
  ApiError error;
  error.message = std::string(status.message());
  if (auto param = status.GetPayload(kParamPayload); param.has_value()) {
    error.param = std::string(*param);
  }
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      error.http_status = 400;
      error.type = "invalid_request_error";
      break;
    case absl::StatusCode::kUnauthenticated:
      error.http_status = 401;
      error.type = "invalid_request_error";
      error.code = "invalid_api_key";
      break;
    case absl::StatusCode::kPermissionDenied:
      error.http_status = 403;
      error.type = "invalid_request_error";
      error.code = "permission_denied";
      break;
    case absl::StatusCode::kNotFound:
      error.http_status = 404;
      error.type = "invalid_request_error";
      error.code = "not_found";
      break;
    case absl::StatusCode::kResourceExhausted:
      error.http_status = 429;
      error.type = "rate_limit_error";
      error.code = "rate_limit_exceeded";
      break;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      error.http_status = 503;
      error.type = "server_error";
      error.code = "unavailable";
      break;
    default:
      error.http_status = 500;
      error.type = "server_error";
      error.code = "internal_error";
      break;
  }
  if (std::optional<std::string> code = ErrorCode(status); code.has_value()) {
    error.code = *std::move(code);
  }
  return error;
}

ApiError MethodNotAllowed(absl::string_view method, absl::string_view path) {
  return ApiError{405, "invalid_request_error", "method_not_allowed", "",
                  absl::StrCat("method ", method, " is not allowed on ", path)};
}

ApiError RouteNotFound(absl::string_view path) {
  return ApiError{404, "invalid_request_error", "unknown_url", "",
                  absl::StrCat("unknown URL: ", path)};
}

ApiError BodyTooLarge(size_t limit_bytes) {
  return ApiError{413, "invalid_request_error", "request_too_large", "",
                  absl::StrCat("the request body is larger than ", limit_bytes, " bytes")};
}

}  // namespace semshare::router::http
