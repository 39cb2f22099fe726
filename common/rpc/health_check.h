#ifndef SEMSHARE_COMMON_RPC_HEALTH_CHECK_H_
#define SEMSHARE_COMMON_RPC_HEALTH_CHECK_H_

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace semshare {

// Calls grpc.health.v1.Health/Check for `service` ("" = the whole server). OK when it answers
// SERVING; Unavailable when it answers otherwise; the call's own error when it fails. With
// wait_for_ready the call waits (up to the timeout) for the server to come up.
absl::Status CheckHealth(const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout,
                         const std::string& service = "", bool wait_for_ready = false);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_RPC_HEALTH_CHECK_H_
