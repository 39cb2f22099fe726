#include "common/jinja/python_format.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace semshare::jinja {
namespace {

void AppendStringRepr(const std::string& text, std::string* out) {
  // Python picks double quotes only when the text has a single quote and no double quote.
  const bool has_single = text.find('\'') != std::string::npos;
  const bool has_double = text.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  out->push_back(quote);
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == quote || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '\r') {
      out->append("\\r");
    } else if (c == '\t') {
      out->append("\\t");
    } else if (byte < 0x20 || byte == 0x7f) {
      absl::StrAppendFormat(out, "\\x%02x", byte);
    } else {
      out->push_back(c);
    }
  }
  out->push_back(quote);
}

void AppendJsonString(const std::string& text, std::string* out) {
  out->push_back('"');
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        if (byte < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", byte);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

absl::Status AppendJson(const Value& value, int indent, bool sort_keys, int depth,
                        std::string* out) {
  if (depth > 512) return absl::InvalidArgumentError("tojson: value nests too deep");
  const auto newline = [&](int level) {
    out->push_back('\n');
    out->append(static_cast<size_t>(indent) * level, ' ');
  };
  switch (value.kind()) {
    case Value::Kind::kNone:
      out->append("null");
      return absl::OkStatus();
    case Value::Kind::kBool:
      out->append(value.bool_value() ? "true" : "false");
      return absl::OkStatus();
    case Value::Kind::kInt:
      absl::StrAppend(out, value.int_value());
      return absl::OkStatus();
    case Value::Kind::kFloat: {
      const double v = value.float_value();
      if (std::isnan(v)) {
        out->append("NaN");
      } else if (std::isinf(v)) {
        out->append(v > 0 ? "Infinity" : "-Infinity");
      } else {
        out->append(PythonFloatRepr(v));
      }
      return absl::OkStatus();
    }
    case Value::Kind::kString:
      AppendJsonString(value.string_value(), out);
      return absl::OkStatus();
    case Value::Kind::kList: {
      const ValueList& items = value.list();
      if (items.empty()) {
        out->append("[]");
        return absl::OkStatus();
      }
      out->push_back('[');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out->append(indent >= 0 ? "," : ", ");
        if (indent >= 0) newline(depth + 1);
        absl::Status status = AppendJson(items[i], indent, sort_keys, depth + 1, out);
        if (!status.ok()) return status;
      }
      if (indent >= 0) newline(depth);
      out->push_back(']');
      return absl::OkStatus();
    }
    case Value::Kind::kDict: {
      std::vector<const ValueDict::Item*> items;
      items.reserve(value.dict().size());
      for (const ValueDict::Item& item : value.dict().items()) items.push_back(&item);
      if (items.empty()) {
        out->append("{}");
        return absl::OkStatus();
      }
      if (sort_keys) {
        std::stable_sort(items.begin(), items.end(),
                         [](const auto* a, const auto* b) { return a->first < b->first; });
      }
      out->push_back('{');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out->append(indent >= 0 ? "," : ", ");
        if (indent >= 0) newline(depth + 1);
        AppendJsonString(items[i]->first, out);
        out->append(": ");
        absl::Status status = AppendJson(items[i]->second, indent, sort_keys, depth + 1, out);
        if (!status.ok()) return status;
      }
      if (indent >= 0) newline(depth);
      out->push_back('}');
      return absl::OkStatus();
    }
    case Value::Kind::kUndefined:
      return absl::InvalidArgumentError(
          absl::StrCat("tojson: '", value.string_value(), "' is undefined"));
    case Value::Kind::kNamespace:
      return absl::InvalidArgumentError("tojson: a namespace is not JSON serializable");
    case Value::Kind::kCallable:
      return absl::InvalidArgumentError("tojson: a function is not JSON serializable");
  }
  return absl::InternalError("tojson: unknown value kind");
}

}  // namespace

std::string PythonFloatRepr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // Shortest round-trip digits in scientific form, d.ddde[+-]XX, then Python's layout: fixed
  // notation for exponents in [-4, 16), scientific otherwise.
  char buffer[64];
  const std::to_chars_result result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  std::string scientific(buffer, result.ptr);
  std::string sign;
  if (!scientific.empty() && scientific[0] == '-') {
    sign = "-";
    scientific.erase(0, 1);
  }
  const size_t e_pos = scientific.find('e');
  std::string digits = scientific.substr(0, e_pos);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exponent = std::atoi(scientific.c_str() + e_pos + 1);
  const int count = static_cast<int>(digits.size());
  std::string out = sign;
  if (exponent >= -4 && exponent < 16) {
    if (exponent >= 0) {
      if (count <= exponent + 1) {
        out += digits + std::string(exponent + 1 - count, '0') + ".0";
      } else {
        out += digits.substr(0, exponent + 1) + "." + digits.substr(exponent + 1);
      }
    } else {
      out += "0." + std::string(-exponent - 1, '0') + digits;
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (count > 1) out += "." + digits.substr(1);
  absl::StrAppendFormat(&out, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
  return out;
}

void AppendPythonRepr(const Value& value, std::string* out) {
  switch (value.kind()) {
    case Value::Kind::kUndefined:
      return;
    case Value::Kind::kNone:
      out->append("None");
      return;
    case Value::Kind::kBool:
      out->append(value.bool_value() ? "True" : "False");
      return;
    case Value::Kind::kInt:
      absl::StrAppend(out, value.int_value());
      return;
    case Value::Kind::kFloat:
      out->append(PythonFloatRepr(value.float_value()));
      return;
    case Value::Kind::kString:
      AppendStringRepr(value.string_value(), out);
      return;
    case Value::Kind::kList: {
      out->push_back('[');
      bool first = true;
      for (const Value& item : value.list()) {
        if (!first) out->append(", ");
        first = false;
        AppendPythonRepr(item, out);
      }
      out->push_back(']');
      return;
    }
    case Value::Kind::kNamespace:
    case Value::Kind::kDict: {
      if (value.is_namespace()) out->append("<Namespace ");
      out->push_back('{');
      bool first = true;
      for (const ValueDict::Item& item : value.dict().items()) {
        if (!first) out->append(", ");
        first = false;
        AppendStringRepr(item.first, out);
        out->append(": ");
        AppendPythonRepr(item.second, out);
      }
      out->push_back('}');
      if (value.is_namespace()) out->push_back('>');
      return;
    }
    case Value::Kind::kCallable:
      out->append("<function>");
      return;
  }
}

absl::StatusOr<std::string> ToJson(const Value& value, int indent, bool sort_keys) {
  std::string out;
  absl::Status status = AppendJson(value, indent, sort_keys, 0, &out);
  if (!status.ok()) return status;
  return out;
}

}  // namespace semshare::jinja
