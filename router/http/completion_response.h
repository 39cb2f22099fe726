#ifndef SEMSHARE_ROUTER_HTTP_COMPLETION_RESPONSE_H_
#define SEMSHARE_ROUTER_HTTP_COMPLETION_RESPONSE_H_

#include <cstdint>
#include <string>

#include "common/json.h"
#include "semshare/v1/common.pb.h"

// Response bodies of the OpenAI-compatible front, in OpenAI's shape (object "text_completion",
// choices, usage) with how semshare served the request under "semshare" (cache_hit,
// reference_id, similarity, recompute_share, kv_kept_share, ttft_ms, latency_ms, stages).
namespace semshare::router::http {

// What every chunk and the whole response of one completion share.
struct CompletionHeader {
  std::string id;       // "cmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// The worker's finish_reason; without one, "length" when it produced max_tokens tokens, else
// "stop" (end of text).
std::string FinishReason(int32_t max_tokens, const v1::GenerateStats& stats);

Json SemshareFields(const v1::GenerateStats& stats);
// prompt/completion/total tokens and prompt_tokens_details.cached_tokens (KV reused).
Json Usage(const v1::GenerateStats& stats);

// The non-streaming response.
Json CompletionBody(const CompletionHeader& header, const std::string& text, int32_t max_tokens,
                    const v1::GenerateStats& stats);

// A streamed chunk carrying text (finish_reason null).
Json StreamTextChunk(const CompletionHeader& header, const std::string& text);
// The last streamed chunk before [DONE]: empty text, finish_reason, usage and semshare.
Json StreamFinalChunk(const CompletionHeader& header, int32_t max_tokens,
                      const v1::GenerateStats& stats);

// A server-sent event: "data: JSON\n\n".
std::string SseEvent(const Json& data);
inline constexpr char kSseDone[] = "data: [DONE]\n\n";

// GET /v1/models.
Json ModelList(const std::string& model, int64_t created);

}  // namespace semshare::router::http

#endif  // SEMSHARE_ROUTER_HTTP_COMPLETION_RESPONSE_H_
