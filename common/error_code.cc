#include "common/error_code.h"

#include <utility>

#include "absl/strings/cord.h"

namespace semshare {

absl::Status WithErrorCode(absl::Status status, absl::string_view code) {
  status.SetPayload(kErrorCodePayload, absl::Cord(code));
  return status;
}

std::optional<std::string> ErrorCode(const absl::Status& status) {
  const auto payload = status.GetPayload(kErrorCodePayload);  // absl::optional<absl::Cord>
  if (!payload.has_value()) return std::nullopt;
  return std::string(*payload);
}

}  // namespace semshare
