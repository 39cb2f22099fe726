#ifndef SEMSHARE_ROUTER_HTTP_COMPLETION_REQUEST_H_
#define SEMSHARE_ROUTER_HTTP_COMPLETION_REQUEST_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "semshare/v1/router.pb.h"

// The body of `POST /v1/completions` (OpenAI's completions API) as a semshare GenerateRequest.
//
// Accepted: model (must name the served model), prompt (a string, a one-element array of
// strings, or an array of token ids), max_tokens (default 16, as OpenAI), temperature (default
// 1, in [0, 2]), top_p (default 1, in (0, 1]), seed, stream, stop (a string or up to 4),
// vLLM's stop_token_ids, and the similarity threshold as `semshare_similarity_threshold` or
// `semshare: {"similarity_threshold": x}`.
// Rejected with InvalidArgument naming the field, because semshare would answer something else
// than asked: n/best_of other than 1, echo, logprobs, suffix, logit_bias, and non-zero
// presence/frequency penalties. Any other field (user, stream_options, ...) is ignored.
namespace semshare::router::http {

struct CompletionRequest {
  std::string model;
  bool stream = false;
  v1::GenerateRequest generate;  // max_tokens is always set (>= 1)
};

// `served_model`: the model id of GET /v1/models; another model is NotFound.
absl::StatusOr<CompletionRequest> ParseCompletionRequest(absl::string_view body,
                                                         absl::string_view served_model);

}  // namespace semshare::router::http

#endif  // SEMSHARE_ROUTER_HTTP_COMPLETION_REQUEST_H_
