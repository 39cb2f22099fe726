#ifndef SEMSHARE_COMMON_RPC_GRPC_STATUS_H_
#define SEMSHARE_COMMON_RPC_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace semshare {

// The one place absl::Status and grpc::Status meet: same code, same message.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_RPC_GRPC_STATUS_H_
