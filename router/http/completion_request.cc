#include "router/http/completion_request.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "common/stop_strings.h"
#include "common/utf8.h"
#include "router/http/api_error.h"

namespace semshare::router::http {
namespace {

constexpr int32_t kDefaultMaxTokens = 16;  // OpenAI's default for completions

bool Present(const Json& body, const std::string& key) {
  return body.contains(key) && !body[key].is_null();
}

absl::StatusOr<double> Number(const Json& body, const std::string& key, double fallback, double low,
                              double high, bool low_open) {
  if (!Present(body, key)) return fallback;
  if (!body[key].is_number())
    return InvalidField(key, absl::StrCat("'", key, "' must be a number"));
  const double value = body[key].number_value();
  if (!(low_open ? value > low : value >= low) || !(value <= high)) {
    return InvalidField(
        key, absl::StrCat("'", key, "' must be in ", low_open ? "(" : "[", low, ", ", high, "]"));
  }
  return value;
}

absl::StatusOr<int64_t> Integer(const Json& body, const std::string& key, int64_t fallback,
                                int64_t low, int64_t high) {
  if (!Present(body, key)) return fallback;
  const Json& value = body[key];
  if (!value.is_number() || value.number_value() != std::floor(value.number_value())) {
    return InvalidField(key, absl::StrCat("'", key, "' must be an integer"));
  }
  if (value.number_value() < static_cast<double>(low) ||
      value.number_value() > static_cast<double>(high)) {
    return InvalidField(key, absl::StrCat("'", key, "' must be in [", low, ", ", high, "]"));
  }
  return static_cast<int64_t>(value.number_value());
}

absl::Status SetPrompt(const Json& body, v1::GenerateRequest* out) {
  const Json& prompt = body["prompt"];
  if (prompt.is_string()) {
    if (prompt.string_value().empty()) return InvalidField("prompt", "'prompt' is empty");
    out->set_prompt(prompt.string_value());
    return absl::OkStatus();
  }
  if (!prompt.is_array() || prompt.array_items().empty()) {
    return InvalidField(
        "prompt",
        "'prompt' must be a string, a one-element array of strings or an array of token ids");
  }
  const Json::Array& items = prompt.array_items();
  if (items[0].is_string()) {
    if (items.size() != 1)
      return InvalidField("prompt", "only one prompt per request is supported");
    if (items[0].string_value().empty()) return InvalidField("prompt", "'prompt' is empty");
    out->set_prompt(items[0].string_value());
    return absl::OkStatus();
  }
  for (const Json& item : items) {
    const double id = item.number_value();
    if (!item.is_number() || id != std::floor(id) || id < 0 ||
        id > std::numeric_limits<int32_t>::max()) {
      return InvalidField(
          "prompt",
          "'prompt' as an array must hold one string or token ids (non-negative integers)");
    }
    out->add_prompt_token_ids(static_cast<int32_t>(id));
  }
  return absl::OkStatus();
}

// Fields that would change the answer and that semshare does not implement.
absl::Status RejectUnsupported(const Json& body) {
  for (const char* key : {"n", "best_of"}) {
    if (Present(body, key) && !(body[key].is_number() && body[key].number_value() == 1)) {
      return InvalidField(
          key, absl::StrCat("only one completion per request is supported ('", key, "': 1)"));
    }
  }
  if (Present(body, "echo") && !(body["echo"].is_bool() && !body["echo"].bool_value())) {
    return InvalidField("echo", "'echo' is not supported");
  }
  for (const char* key : {"logprobs", "suffix"}) {
    if (Present(body, key)) return InvalidField(key, absl::StrCat("'", key, "' is not supported"));
  }
  if (Present(body, "logit_bias")) {
    const Json& bias = body["logit_bias"];
    if (!(bias.is_object() && bias.object_items().empty())) {
      return InvalidField("logit_bias", "'logit_bias' is not supported");
    }
  }
  for (const char* key : {"presence_penalty", "frequency_penalty"}) {
    SEMSHARE_ASSIGN_OR_RETURN(const double penalty, Number(body, key, 0, -2, 2, false));
    if (penalty != 0)
      return InvalidField(key, absl::StrCat("'", key, "' is not supported (only 0)"));
  }
  return absl::OkStatus();
}

// OpenAI's `stop` (a string or up to 4) and vLLM's `stop_token_ids`.
absl::Status SetStops(const Json& body, v1::GenerateRequest* out) {
  if (Present(body, "stop")) {
    const Json& stop = body["stop"];
    const std::string shape = absl::StrCat("'stop' must be a string or an array of up to ",
                                           kMaxStopStrings, " non-empty strings");
    std::vector<std::string> strings;
    if (stop.is_string()) {
      strings.push_back(stop.string_value());
    } else if (stop.is_array()) {
      if (stop.array_items().size() > kMaxStopStrings) return InvalidField("stop", shape);
      for (const Json& item : stop.array_items()) {
        if (!item.is_string()) return InvalidField("stop", shape);
        strings.push_back(item.string_value());
      }
    } else {
      return InvalidField("stop", shape);
    }
    for (std::string& text : strings) {
      if (text.empty()) return InvalidField("stop", shape);
      if (FindInvalidUtf8(text) != absl::string_view::npos)
        return InvalidField("stop", "'stop' strings must be valid UTF-8");
      out->add_stop(std::move(text));
    }
  }
  if (Present(body, "stop_token_ids")) {
    const Json& ids = body["stop_token_ids"];
    const char* shape = "'stop_token_ids' must be an array of token ids (non-negative integers)";
    if (!ids.is_array()) return InvalidField("stop_token_ids", shape);
    for (const Json& item : ids.array_items()) {
      const double id = item.number_value();
      if (!item.is_number() || id != std::floor(id) || id < 0 ||
          id > std::numeric_limits<int32_t>::max()) {
        return InvalidField("stop_token_ids", shape);
      }
      out->add_stop_token_ids(static_cast<int32_t>(id));
    }
  }
  return absl::OkStatus();
}

absl::Status SetThreshold(const Json& body, v1::GenerateRequest* out) {
  const bool flat = Present(body, "semshare_similarity_threshold");
  const bool nested =
      Present(body, "semshare") && Present(body["semshare"], "similarity_threshold");
  if (Present(body, "semshare") && !body["semshare"].is_object()) {
    return InvalidField("semshare", "'semshare' must be an object");
  }
  if (flat && nested) {
    return InvalidField("semshare_similarity_threshold",
                        "give the similarity threshold once: semshare_similarity_threshold or "
                        "semshare.similarity_threshold");
  }
  if (!flat && !nested) return absl::OkStatus();
  const Json& holder = flat ? body : body["semshare"];
  const std::string key = flat ? "semshare_similarity_threshold" : "similarity_threshold";
  absl::StatusOr<double> threshold = Number(holder, key, 0, 0, 1, false);
  if (!threshold.ok()) {
    return InvalidField(flat ? key : "semshare.similarity_threshold",
                        absl::StrCat("'", flat ? key : "semshare.similarity_threshold",
                                     "' must be a number in [0, 1]"));
  }
  out->set_similarity_threshold(*threshold);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CompletionRequest> ParseCompletionRequest(absl::string_view body_text,
                                                         absl::string_view served_model) {
  absl::StatusOr<Json> parsed = ParseJson(body_text);
  if (!parsed.ok())
    return absl::InvalidArgumentError(
        absl::StrCat("the body is not valid JSON: ", parsed.status().message()));
  const Json& body = *parsed;
  if (!body.is_object()) return absl::InvalidArgumentError("the body must be a JSON object");

  CompletionRequest request;
  if (!Present(body, "model") || !body["model"].is_string()) {
    return InvalidField("model", "'model' is required and must be a string");
  }
  request.model = body["model"].string_value();
  if (request.model != served_model) {
    return absl::NotFoundError(absl::StrCat(
        "the model '", request.model, "' does not exist; this router serves '", served_model, "'"));
  }
  if (!Present(body, "prompt")) return InvalidField("prompt", "'prompt' is required");
  v1::GenerateRequest& generate = request.generate;
  SEMSHARE_RETURN_IF_ERROR(SetPrompt(body, &generate));
  SEMSHARE_RETURN_IF_ERROR(RejectUnsupported(body));
  if (Present(body, "stream")) {
    if (!body["stream"].is_bool()) return InvalidField("stream", "'stream' must be a boolean");
    request.stream = body["stream"].bool_value();
  }
  SEMSHARE_ASSIGN_OR_RETURN(
      const int64_t max_tokens,
      Integer(body, "max_tokens", kDefaultMaxTokens, 1, std::numeric_limits<int32_t>::max()));
  generate.set_max_tokens(static_cast<int32_t>(max_tokens));
  SEMSHARE_ASSIGN_OR_RETURN(const double temperature, Number(body, "temperature", 1, 0, 2, false));
  generate.set_temperature(temperature);
  SEMSHARE_ASSIGN_OR_RETURN(const double top_p, Number(body, "top_p", 1, 0, 1, true));
  generate.set_top_p(top_p);
  SEMSHARE_ASSIGN_OR_RETURN(const int64_t seed, Integer(body, "seed", 0, 0, int64_t{1} << 53));
  generate.set_seed(static_cast<uint64_t>(seed));
  SEMSHARE_RETURN_IF_ERROR(SetThreshold(body, &generate));
  SEMSHARE_RETURN_IF_ERROR(SetStops(body, &generate));
  return request;
}

}  // namespace semshare::router::http
