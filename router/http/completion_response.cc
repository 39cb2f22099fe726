#include "router/http/completion_response.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace semshare::router::http {
namespace {

Json Choice(const std::string& text, Json finish_reason) {
  Json choice = Json::MakeObject();
  choice["text"] = text;
  choice["index"] = 0;
  choice["logprobs"] = Json();
  choice["finish_reason"] = std::move(finish_reason);
  return choice;
}

Json Completion(const CompletionHeader& header, Json choice) {
  Json body = Json::MakeObject();
  body["id"] = header.id;
  body["object"] = "text_completion";
  body["created"] = header.created;
  body["model"] = header.model;
  body["choices"] = Json::Array{std::move(choice)};
  return body;
}

}  // namespace

std::string FinishReason(int32_t max_tokens, const v1::GenerateStats& stats) {
  if (!stats.finish_reason().empty()) return stats.finish_reason();
  return stats.completion_tokens() >= max_tokens ? "length" : "stop";
}

Json SemshareFields(const v1::GenerateStats& stats) {
  Json stages = Json::MakeObject();
  stages["tokenize_ms"] = stats.stages().tokenize_ms();
  stages["search_ms"] = stats.stages().search_ms();
  stages["queue_ms"] = stats.stages().queue_ms();
  stages["fetch_ms"] = stats.stages().fetch_ms();
  stages["recompute_ms"] = stats.stages().recompute_ms();
  stages["decode_ms"] = stats.stages().decode_ms();
  Json fields = Json::MakeObject();
  fields["cache_hit"] = stats.cache_hit();
  fields["reference_id"] = stats.reference_id().empty() ? Json() : Json(stats.reference_id());
  fields["similarity"] = stats.similarity();
  fields["recompute_share"] = stats.recompute_share();
  fields["kv_kept_share"] = stats.kv_kept_share();
  fields["ttft_ms"] = stats.ttft_ms();
  fields["latency_ms"] = stats.latency_ms();
  fields["stages"] = std::move(stages);
  return fields;
}

Json Usage(const v1::GenerateStats& stats) {
  Json usage = Json::MakeObject();
  usage["prompt_tokens"] = stats.prompt_tokens();
  usage["completion_tokens"] = stats.completion_tokens();
  usage["total_tokens"] = stats.prompt_tokens() + stats.completion_tokens();
  Json details = Json::MakeObject();
  details["cached_tokens"] = stats.cached_tokens();
  usage["prompt_tokens_details"] = std::move(details);
  return usage;
}

Json CompletionBody(const CompletionHeader& header, const std::string& text, int32_t max_tokens,
                    const v1::GenerateStats& stats) {
  Json body = Completion(header, Choice(text, FinishReason(max_tokens, stats)));
  body["usage"] = Usage(stats);
  body["semshare"] = SemshareFields(stats);
  return body;
}

Json StreamTextChunk(const CompletionHeader& header, const std::string& text) {
  return Completion(header, Choice(text, Json()));
}

Json StreamFinalChunk(const CompletionHeader& header, int32_t max_tokens,
                      const v1::GenerateStats& stats) {
  return CompletionBody(header, "", max_tokens, stats);
}

std::string SseEvent(const Json& data) { return absl::StrCat("data: ", data.Dump(), "\n\n"); }

Json ModelList(const std::string& model, int64_t created) {
  Json entry = Json::MakeObject();
  entry["id"] = model;
  entry["object"] = "model";
  entry["created"] = created;
  entry["owned_by"] = "semshare";
  Json list = Json::MakeObject();
  list["object"] = "list";
  list["data"] = Json::Array{std::move(entry)};
  return list;
}

}  // namespace semshare::router::http
