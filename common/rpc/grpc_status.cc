#include "common/rpc/grpc_status.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "common/error_code.h"
#include "semshare/v1/status.pb.h"

namespace semshare {

// absl::StatusCode and grpc::StatusCode share their numbering (both follow google.rpc.Code).
grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  std::string message(status.message());
  const std::optional<std::string> reason = ErrorCode(status);
  if (!reason.has_value()) return grpc::Status(code, message);
  v1::ErrorInfo info;
  info.set_reason(absl::AsciiStrToUpper(*reason));
  info.set_domain(std::string(kErrorDomain));
  v1::RpcStatus details;
  details.set_code(static_cast<int32_t>(status.code()));
  details.set_message(message);
  v1::StatusDetail* detail = details.add_details();
  detail->set_type_url(std::string(kErrorInfoTypeUrl));
  detail->set_value(info.SerializeAsString());
  return grpc::Status(code, message, details.SerializeAsString());
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  absl::Status result(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  v1::RpcStatus details;
  if (status.error_details().empty() || !details.ParseFromString(status.error_details())) {
    return result;
  }
  for (const v1::StatusDetail& detail : details.details()) {
    v1::ErrorInfo info;
    if (detail.type_url() == kErrorInfoTypeUrl && info.ParseFromString(detail.value()) &&
        info.domain() == kErrorDomain && !info.reason().empty()) {
      return WithErrorCode(std::move(result), absl::AsciiStrToLower(info.reason()));
    }
  }
  return result;
}

}  // namespace semshare
