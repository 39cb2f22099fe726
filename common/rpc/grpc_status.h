#ifndef SEMSHARE_COMMON_RPC_GRPC_STATUS_H_
#define SEMSHARE_COMMON_RPC_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace semshare {

// What a semshare error's google.rpc.ErrorInfo carries (proto/semshare/v1/status.proto).
inline constexpr absl::string_view kErrorInfoTypeUrl = "type.googleapis.com/google.rpc.ErrorInfo";
inline constexpr absl::string_view kErrorDomain = "semshare.dev";

// The one place absl::Status and grpc::Status meet: same code, same message. A status's error
// code (common/error_code.h) travels as a google.rpc.ErrorInfo in the status details, reason in
// upper case (context_length_exceeded: CONTEXT_LENGTH_EXCEEDED); FromGrpcStatus restores it and
// ignores details it does not recognise.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_RPC_GRPC_STATUS_H_
