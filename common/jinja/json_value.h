#ifndef SEMSHARE_COMMON_JINJA_JSON_VALUE_H_
#define SEMSHARE_COMMON_JINJA_JSON_VALUE_H_

#include "common/jinja/value.h"
#include "nlohmann/json.hpp"

namespace semshare::jinja {

// A template value from JSON (an OpenAI request's messages, a tokenizer config). ordered_json
// keeps key order as Python's json.loads does, which tojson output depends on; a plain
// nlohmann::json has its keys sorted. Integers beyond int64 become floats.
Value ValueFromJson(const nlohmann::ordered_json& json);
Value ValueFromJson(const nlohmann::json& json);

}  // namespace semshare::jinja

#endif  // SEMSHARE_COMMON_JINJA_JSON_VALUE_H_
