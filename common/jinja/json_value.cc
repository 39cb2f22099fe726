#include "common/jinja/json_value.h"

#include <cstdint>
#include <limits>
#include <string>

namespace semshare::jinja {
namespace {

template <typename Json>
Value Convert(const Json& json) {
  switch (json.type()) {
    case nlohmann::json::value_t::null:
      return Value::None();
    case nlohmann::json::value_t::boolean:
      return Value(json.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value(json.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const auto value = json.template get<uint64_t>();
      if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Value(static_cast<double>(value));
      }
      return Value(static_cast<int64_t>(value));
    }
    case nlohmann::json::value_t::number_float:
      return Value(json.template get<double>());
    case nlohmann::json::value_t::string:
      return Value(json.template get<std::string>());
    case nlohmann::json::value_t::array: {
      ValueList items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(Convert(item));
      return Value(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      ValueDict dict;
      for (auto it = json.begin(); it != json.end(); ++it) dict.Set(it.key(), Convert(it.value()));
      return Value(std::move(dict));
    }
    default:
      return Value::None();  // binary and discarded values have no template meaning
  }
}

}  // namespace

Value ValueFromJson(const nlohmann::ordered_json& json) { return Convert(json); }
Value ValueFromJson(const nlohmann::json& json) { return Convert(json); }

}  // namespace semshare::jinja
