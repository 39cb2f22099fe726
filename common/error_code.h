#ifndef SEMSHARE_COMMON_ERROR_CODE_H_
#define SEMSHARE_COMMON_ERROR_CODE_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

// A status's machine-readable reason, for callers that must tell one refusal from another
// without reading its message. It rides on the status as a payload; over gRPC it travels as a
// google.rpc.ErrorInfo in the standard status details (common/rpc/grpc_status.h), and the HTTP
// front puts it in OpenAI's error `code`.
namespace semshare {

inline constexpr absl::string_view kErrorCodePayload = "type.semshare.dev/error.code";

// The codes, in OpenAI's spelling (lower snake case).
// A prompt, or a prompt plus max_tokens, past the model's context (max_position_embeddings).
inline constexpr absl::string_view kContextLengthExceeded = "context_length_exceeded";

// `status` with its reason set to `code`; an OK status stays OK (a payload on OK is dropped).
absl::Status WithErrorCode(absl::Status status, absl::string_view code);

// The reason set by WithErrorCode, if any.
std::optional<std::string> ErrorCode(const absl::Status& status);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_ERROR_CODE_H_
