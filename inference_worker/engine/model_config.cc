#include "inference_worker/engine/model_config.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/error_code.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace semshare {
namespace {

constexpr char kPrefix[] = "config.json: ";

absl::Status Invalid(absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(kPrefix, message));
}

// The common/json.h getters say "missing field 'x'" / "field 'x' must be ..."; a config
// error is always the caller's input, so every failure becomes InvalidArgument, and fields
// nested in an object get their dotted path ("rope_scaling.factor").
absl::Status FieldError(const absl::Status& status, absl::string_view parent) {
  std::string message(status.message());
  if (!parent.empty()) {
    const size_t quote = message.find('\'');
    if (quote != std::string::npos) message.insert(quote + 1, absl::StrCat(parent, "."));
  }
  return Invalid(message);
}

absl::StatusOr<int64_t> RequiredInt(const Json& json, const std::string& key,
                                    absl::string_view parent = "") {
  absl::StatusOr<int64_t> value = GetInt(json, key);
  if (!value.ok()) return FieldError(value.status(), parent);
  return *value;
}

// Absent and null both mean "use the default", as in transformers' config classes.
absl::StatusOr<int64_t> OptionalInt(const Json& json, const std::string& key,
                                    int64_t default_value) {
  if (json[key].is_null()) return default_value;
  return RequiredInt(json, key);
}

absl::StatusOr<double> RequiredNumber(const Json& json, const std::string& key,
                                      absl::string_view parent = "") {
  absl::StatusOr<double> value = GetNumber(json, key);
  if (!value.ok()) return FieldError(value.status(), parent);
  return *value;
}

absl::StatusOr<double> OptionalNumber(const Json& json, const std::string& key,
                                      double default_value) {
  if (json[key].is_null()) return default_value;
  return RequiredNumber(json, key);
}

absl::StatusOr<bool> OptionalBool(const Json& json, const std::string& key, bool default_value) {
  if (json[key].is_null()) return default_value;
  absl::StatusOr<bool> value = GetBool(json, key);
  if (!value.ok()) return FieldError(value.status(), "");
  return *value;
}

absl::StatusOr<std::string> OptionalString(const Json& json, const std::string& key,
                                           std::string default_value) {
  if (json[key].is_null()) return default_value;
  absl::StatusOr<std::string> value = GetString(json, key);
  if (!value.ok()) return FieldError(value.status(), "");
  return *value;
}

absl::Status RequirePositive(absl::string_view field, double value) {
  if (value > 0) return absl::OkStatus();
  return Invalid(absl::StrCat("field '", field, "' must be positive, got ", value));
}

std::string ArchitectureName(const std::string& model_type) {
  if (model_type == "mistral") return "MistralForCausalLM";
  if (model_type == "qwen2") return "Qwen2ForCausalLM";
  return "LlamaForCausalLM";
}

// transformers' per-type default for max_position_embeddings.
int64_t DefaultMaxPositions(const std::string& model_type) {
  if (model_type == "mistral") return 131072;
  if (model_type == "qwen2") return 32768;
  return 2048;
}

absl::StatusOr<std::optional<RopeScaling>> ParseRopeScaling(const Json& json) {
  const Json& scaling = json["rope_scaling"];
  if (scaling.is_null()) return std::optional<RopeScaling>();
  if (!scaling.is_object()) return Invalid("field 'rope_scaling' must be an object or null");
  // Older configs name the kind "type", newer ones "rope_type".
  const std::string key = scaling.contains("rope_type") ? "rope_type" : "type";
  absl::StatusOr<std::string> rope_type = GetString(scaling, key);
  if (!rope_type.ok()) return FieldError(rope_type.status(), "rope_scaling");
  if (*rope_type == "default") return std::optional<RopeScaling>();
  if (*rope_type != "llama3") {
    return Invalid(absl::StrCat("field 'rope_scaling.", key, "' is '", *rope_type,
                                "'; supported: llama3 (or rope_scaling null)"));
  }
  RopeScaling rope;
  SEMSHARE_ASSIGN_OR_RETURN(rope.factor, RequiredNumber(scaling, "factor", "rope_scaling"));
  SEMSHARE_ASSIGN_OR_RETURN(rope.low_freq_factor,
                            RequiredNumber(scaling, "low_freq_factor", "rope_scaling"));
  SEMSHARE_ASSIGN_OR_RETURN(rope.high_freq_factor,
                            RequiredNumber(scaling, "high_freq_factor", "rope_scaling"));
  SEMSHARE_ASSIGN_OR_RETURN(
      rope.original_max_position_embeddings,
      RequiredInt(scaling, "original_max_position_embeddings", "rope_scaling"));
  SEMSHARE_RETURN_IF_ERROR(RequirePositive("rope_scaling.factor", rope.factor));
  SEMSHARE_RETURN_IF_ERROR(RequirePositive("rope_scaling.low_freq_factor", rope.low_freq_factor));
  SEMSHARE_RETURN_IF_ERROR(
      RequirePositive("rope_scaling.original_max_position_embeddings",
                      static_cast<double>(rope.original_max_position_embeddings)));
  // The llama3 formula divides by (high - low); equal factors would give NaN frequencies.
  if (rope.high_freq_factor <= rope.low_freq_factor) {
    return Invalid(absl::StrCat("field 'rope_scaling.high_freq_factor' (", rope.high_freq_factor,
                                ") must exceed 'rope_scaling.low_freq_factor' (",
                                rope.low_freq_factor, ")"));
  }
  return std::optional<RopeScaling>(rope);
}

absl::StatusOr<std::vector<int64_t>> ParseEosTokenIds(const Json& json) {
  const Json& eos = json["eos_token_id"];
  std::vector<int64_t> ids;
  if (eos.is_null()) return ids;
  if (eos.is_number()) {
    SEMSHARE_ASSIGN_OR_RETURN(int64_t id, RequiredInt(json, "eos_token_id"));
    ids.push_back(id);
  } else if (eos.is_array()) {
    for (const Json& item : eos.array_items()) {
      Json holder = Json::MakeObject();
      holder["eos_token_id"] = item;
      SEMSHARE_ASSIGN_OR_RETURN(int64_t id, RequiredInt(holder, "eos_token_id"));
      ids.push_back(id);
    }
  } else {
    return Invalid("field 'eos_token_id' must be an integer, a list of integers or null");
  }
  for (int64_t id : ids) {
    if (id < 0) return Invalid(absl::StrCat("field 'eos_token_id' has negative id ", id));
  }
  return ids;
}

}  // namespace

absl::StatusOr<ModelConfig> ModelConfig::FromJson(const Json& json) {
  if (!json.is_object()) return Invalid("not a JSON object");
  ModelConfig config;

  absl::StatusOr<std::string> model_type = GetString(json, "model_type");
  if (!model_type.ok()) return FieldError(model_type.status(), "");
  if (*model_type != "llama" && *model_type != "mistral" && *model_type != "qwen2") {
    return Invalid(absl::StrCat("field 'model_type' is '", *model_type,
                                "'; supported: llama, mistral, qwen2"));
  }
  config.model_type = *model_type;

  SEMSHARE_ASSIGN_OR_RETURN(std::string hidden_act, OptionalString(json, "hidden_act", "silu"));
  if (hidden_act != "silu") {
    return Invalid(absl::StrCat("field 'hidden_act' is '", hidden_act, "'; supported: silu"));
  }

  SEMSHARE_ASSIGN_OR_RETURN(config.vocab_size, RequiredInt(json, "vocab_size"));
  SEMSHARE_ASSIGN_OR_RETURN(config.hidden_size, RequiredInt(json, "hidden_size"));
  SEMSHARE_ASSIGN_OR_RETURN(config.num_hidden_layers, RequiredInt(json, "num_hidden_layers"));
  SEMSHARE_ASSIGN_OR_RETURN(config.num_attention_heads, RequiredInt(json, "num_attention_heads"));
  SEMSHARE_ASSIGN_OR_RETURN(config.intermediate_size, RequiredInt(json, "intermediate_size"));
  for (const auto& [field, value] :
       {std::pair<const char*, int64_t>{"vocab_size", config.vocab_size},
        {"hidden_size", config.hidden_size},
        {"num_hidden_layers", config.num_hidden_layers},
        {"num_attention_heads", config.num_attention_heads},
        {"intermediate_size", config.intermediate_size}}) {
    SEMSHARE_RETURN_IF_ERROR(RequirePositive(field, static_cast<double>(value)));
  }

  SEMSHARE_ASSIGN_OR_RETURN(config.num_key_value_heads,
                            OptionalInt(json, "num_key_value_heads", config.num_attention_heads));
  SEMSHARE_RETURN_IF_ERROR(
      RequirePositive("num_key_value_heads", static_cast<double>(config.num_key_value_heads)));
  if (config.num_attention_heads % config.num_key_value_heads != 0) {
    return Invalid(absl::StrCat("field 'num_attention_heads' (", config.num_attention_heads,
                                ") must be a multiple of 'num_key_value_heads' (",
                                config.num_key_value_heads, ")"));
  }
  if (json["head_dim"].is_null()) {
    if (config.hidden_size % config.num_attention_heads != 0) {
      return Invalid(absl::StrCat("field 'hidden_size' (", config.hidden_size,
                                  ") is not a multiple of 'num_attention_heads' (",
                                  config.num_attention_heads, "); set 'head_dim'"));
    }
    config.head_dim = config.hidden_size / config.num_attention_heads;
  } else {
    SEMSHARE_ASSIGN_OR_RETURN(config.head_dim, RequiredInt(json, "head_dim"));
  }
  SEMSHARE_RETURN_IF_ERROR(RequirePositive("head_dim", static_cast<double>(config.head_dim)));
  // RoPE rotates pairs of dimensions (rotate-half), so an odd head_dim has no valid layout.
  if (config.head_dim % 2 != 0) {
    return Invalid(absl::StrCat("field 'head_dim' (", config.head_dim, ") must be even"));
  }

  SEMSHARE_ASSIGN_OR_RETURN(config.rope_theta, OptionalNumber(json, "rope_theta", 10000.0));
  SEMSHARE_RETURN_IF_ERROR(RequirePositive("rope_theta", config.rope_theta));
  SEMSHARE_ASSIGN_OR_RETURN(config.rope_scaling, ParseRopeScaling(json));
  SEMSHARE_ASSIGN_OR_RETURN(config.rms_norm_eps, OptionalNumber(json, "rms_norm_eps", 1e-6));
  SEMSHARE_RETURN_IF_ERROR(RequirePositive("rms_norm_eps", config.rms_norm_eps));
  SEMSHARE_ASSIGN_OR_RETURN(config.tie_word_embeddings,
                            OptionalBool(json, "tie_word_embeddings", false));

  // Qwen2's q/k/v projections always carry a bias and its config has no switch for it;
  // Mistral's never do; Llama says so in "attention_bias".
  if (config.model_type == "qwen2") {
    config.attention_bias = true;
  } else if (config.model_type == "llama") {
    SEMSHARE_ASSIGN_OR_RETURN(config.attention_bias, OptionalBool(json, "attention_bias", false));
  }

  SEMSHARE_ASSIGN_OR_RETURN(
      config.max_position_embeddings,
      OptionalInt(json, "max_position_embeddings", DefaultMaxPositions(config.model_type)));
  SEMSHARE_RETURN_IF_ERROR(RequirePositive("max_position_embeddings",
                                           static_cast<double>(config.max_position_embeddings)));

  // Llama has no sliding window (transformers ignores the field there). Qwen2 applies its
  // window only when use_sliding_window is true, which is off by default.
  bool use_sliding_window = config.model_type == "mistral";
  if (config.model_type == "qwen2") {
    SEMSHARE_ASSIGN_OR_RETURN(use_sliding_window, OptionalBool(json, "use_sliding_window", false));
  }
  if (use_sliding_window) {
    SEMSHARE_ASSIGN_OR_RETURN(config.sliding_window, OptionalInt(json, "sliding_window", 0));
    if (config.sliding_window < 0) {
      return Invalid(
          absl::StrCat("field 'sliding_window' must be >= 0 or null, got ", config.sliding_window));
    }
    // Qwen2 windows only the layers from max_window_layers on (transformers' default 28).
    if (config.model_type == "qwen2") {
      SEMSHARE_ASSIGN_OR_RETURN(config.sliding_window_first_layer,
                                OptionalInt(json, "max_window_layers", 28));
      if (config.sliding_window_first_layer < 0) {
        return Invalid(absl::StrCat("field 'max_window_layers' must be >= 0, got ",
                                    config.sliding_window_first_layer));
      }
    }
  }

  SEMSHARE_ASSIGN_OR_RETURN(config.bos_token_id, OptionalInt(json, "bos_token_id", -1));
  if (config.bos_token_id < -1) {
    return Invalid(absl::StrCat("field 'bos_token_id' has negative id ", config.bos_token_id));
  }
  SEMSHARE_ASSIGN_OR_RETURN(config.eos_token_ids, ParseEosTokenIds(json));

  // transformers >= 4.56 writes "dtype" where older versions wrote "torch_dtype".
  const std::string dtype_key = json.contains("torch_dtype") ? "torch_dtype" : "dtype";
  SEMSHARE_ASSIGN_OR_RETURN(config.torch_dtype, OptionalString(json, dtype_key, "float32"));
  return config;
}

Json ModelConfig::ToJson() const {
  Json json = Json::MakeObject();
  json["architectures"] = Json(Json::Array{Json(ArchitectureName(model_type))});
  json["model_type"] = model_type;
  json["hidden_act"] = "silu";
  json["vocab_size"] = vocab_size;
  json["hidden_size"] = hidden_size;
  json["num_hidden_layers"] = num_hidden_layers;
  json["num_attention_heads"] = num_attention_heads;
  json["num_key_value_heads"] = num_key_value_heads;
  json["head_dim"] = head_dim;
  json["intermediate_size"] = intermediate_size;
  json["rope_theta"] = rope_theta;
  if (rope_scaling.has_value()) {
    Json scaling = Json::MakeObject();
    scaling["rope_type"] = "llama3";
    scaling["factor"] = rope_scaling->factor;
    scaling["low_freq_factor"] = rope_scaling->low_freq_factor;
    scaling["high_freq_factor"] = rope_scaling->high_freq_factor;
    scaling["original_max_position_embeddings"] = rope_scaling->original_max_position_embeddings;
    json["rope_scaling"] = std::move(scaling);
  } else {
    json["rope_scaling"] = Json();
  }
  json["rms_norm_eps"] = rms_norm_eps;
  json["tie_word_embeddings"] = tie_word_embeddings;
  if (model_type == "llama") json["attention_bias"] = attention_bias;
  json["max_position_embeddings"] = max_position_embeddings;
  if (model_type == "qwen2") {
    json["use_sliding_window"] = sliding_window > 0;
    if (sliding_window > 0) json["max_window_layers"] = sliding_window_first_layer;
  }
  if (model_type != "llama") {
    json["sliding_window"] = sliding_window > 0 ? Json(sliding_window) : Json();
  }
  json["bos_token_id"] = bos_token_id >= 0 ? Json(bos_token_id) : Json();
  if (eos_token_ids.size() == 1) {
    json["eos_token_id"] = eos_token_ids[0];
  } else if (eos_token_ids.empty()) {
    json["eos_token_id"] = Json();
  } else {
    Json ids = Json::MakeArray();
    for (int64_t id : eos_token_ids) ids.push_back(id);
    json["eos_token_id"] = std::move(ids);
  }
  json["torch_dtype"] = torch_dtype;
  return json;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir) {
  const std::string path = JoinPath(dir, "config.json");
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat("checkpoint ", dir, ": ", text.status().message()));
  }
  absl::StatusOr<Json> json = ParseJson(*text);
  if (!json.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint ", dir, ": config.json: ", json.status().message()));
  }
  absl::StatusOr<ModelConfig> config = ModelConfig::FromJson(*json);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat("checkpoint ", dir, ": ", config.status().message()));
  }
  return config;
}

absl::Status CheckFitsContext(const ModelConfig& config, int64_t prompt_tokens,
                              int64_t max_new_tokens) {
  const int64_t context = config.max_position_embeddings;
  if (prompt_tokens > context) {
    return WithErrorCode(
        absl::InvalidArgumentError(absl::StrCat("the prompt has ", prompt_tokens,
                                                " tokens, more than the model's context of ",
                                                context, " (max_position_embeddings)")),
        kContextLengthExceeded);
  }
  if (prompt_tokens + max_new_tokens > context) {
    return WithErrorCode(absl::InvalidArgumentError(absl::StrCat(
                             "the prompt's ", prompt_tokens, " tokens plus max_tokens ",
                             max_new_tokens, " exceed the model's context of ", context,
                             " (max_position_embeddings); max_tokens can be at most ",
                             context - prompt_tokens, " for this prompt")),
                         kContextLengthExceeded);
  }
  return absl::OkStatus();
}

}  // namespace semshare
