#include "common/json.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/utf8.h"

namespace semshare {
namespace {

const Json& NullJson() {
  static const Json* const kNull = new Json();
  return *kNull;
}

constexpr int kMaxDepth = 256;

class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::StatusOr<Json> ParseDocument() {
    Json value;
    absl::Status status = ParseValue(&value, 0);
    if (!status.ok()) return status;
    SkipSpace();
    if (pos_ != text_.size()) return Error("trailing characters after the JSON value");
    return value;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("JSON: ", what, " at byte ", pos_));
  }

  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\r' || text_[pos_] == '\t')) {
      ++pos_;
    }
  }

  bool Consume(absl::string_view literal) {
    if (text_.substr(pos_, literal.size()) == literal) {
      pos_ += literal.size();
      return true;
    }
    return false;
  }

  absl::Status ParseValue(Json* out, int depth) {
    if (depth > kMaxDepth) return Error("nesting too deep");
    SkipSpace();
    if (pos_ >= text_.size()) return Error("unexpected end of input");
    const char c = text_[pos_];
    if (c == '{') return ParseObject(out, depth);
    if (c == '[') return ParseArray(out, depth);
    if (c == '"') {
      std::string s;
      absl::Status status = ParseString(&s);
      if (!status.ok()) return status;
      *out = Json(std::move(s));
      return absl::OkStatus();
    }
    if (Consume("true")) {
      *out = Json(true);
      return absl::OkStatus();
    }
    if (Consume("false")) {
      *out = Json(false);
      return absl::OkStatus();
    }
    if (Consume("null")) {
      *out = Json();
      return absl::OkStatus();
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
    // Printable ASCII is quoted; any other byte is named in hex, so the message stays UTF-8.
    if (c >= ' ' && c <= '~')
      return Error(absl::StrCat("unexpected character '", std::string(1, c), "'"));
    return Error(absl::StrFormat("unexpected byte 0x%02x", static_cast<unsigned char>(c)));
  }

  absl::Status ParseNumber(Json* out) {
    const size_t start = pos_;
    if (text_[pos_] == '-') ++pos_;
    auto digits = [&] {
      const size_t before = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
      return pos_ > before;
    };
    if (!digits()) return Error("malformed number");
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (!digits()) return Error("malformed number");
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
      if (!digits()) return Error("malformed number");
    }
    const std::string number(text_.substr(start, pos_ - start));
    *out = Json(std::strtod(number.c_str(), nullptr));
    return absl::OkStatus();
  }

  absl::Status ParseHex4(uint32_t* value) {
    if (pos_ + 4 > text_.size()) return Error("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = text_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9')
        v |= h - '0';
      else if (h >= 'a' && h <= 'f')
        v |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F')
        v |= h - 'A' + 10;
      else
        return Error("bad hex digit in \\u escape");
    }
    *value = v;
    return absl::OkStatus();
  }

  absl::Status ParseString(std::string* out) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= text_.size()) return Error("unterminated string");
      const char c = text_[pos_++];
      if (c == '"') return absl::OkStatus();
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in string");
      if (static_cast<unsigned char>(c) >= 0x80) {
        // JSON text is UTF-8 (RFC 8259, 8.1): a string never carries bytes that are not.
        --pos_;
        char32_t code_point = 0;
        int length = 1;
        if (!DecodeUtf8Char(text_.substr(pos_), &code_point, &length)) {
          return Error("invalid UTF-8 in string");
        }
        out->append(text_.data() + pos_, static_cast<size_t>(length));
        pos_ += static_cast<size_t>(length);
        continue;
      }
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) return Error("unterminated escape");
      const char e = text_[pos_++];
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t code_point = 0;
          absl::Status status = ParseHex4(&code_point);
          if (!status.ok()) return status;
          if (code_point >= 0xD800 && code_point < 0xDC00) {
            uint32_t low = 0;
            if (!Consume("\\u")) return Error("unpaired surrogate");
            status = ParseHex4(&low);
            if (!status.ok()) return status;
            if (low < 0xDC00 || low >= 0xE000) return Error("bad low surrogate");
            code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
          } else if (code_point >= 0xDC00 && code_point < 0xE000) {
            return Error("unpaired surrogate");
          }
          AppendUtf8(static_cast<char32_t>(code_point), out);
          break;
        }
        default:
          return Error("unknown escape");
      }
    }
  }

  absl::Status ParseArray(Json* out, int depth) {
    ++pos_;
    Json::Array items;
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      *out = Json(std::move(items));
      return absl::OkStatus();
    }
    while (true) {
      Json item;
      absl::Status status = ParseValue(&item, depth + 1);
      if (!status.ok()) return status;
      items.push_back(std::move(item));
      SkipSpace();
      if (pos_ >= text_.size()) return Error("unterminated array");
      if (text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (text_[pos_] == ']') {
        ++pos_;
        break;
      }
      return Error("expected ',' or ']' in array");
    }
    *out = Json(std::move(items));
    return absl::OkStatus();
  }

  absl::Status ParseObject(Json* out, int depth) {
    ++pos_;
    Json::Object items;
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      *out = Json(std::move(items));
      return absl::OkStatus();
    }
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '"') return Error("expected a string key");
      std::string key;
      absl::Status status = ParseString(&key);
      if (!status.ok()) return status;
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != ':') return Error("expected ':' after key");
      ++pos_;
      Json value;
      status = ParseValue(&value, depth + 1);
      if (!status.ok()) return status;
      items[key] = std::move(value);
      SkipSpace();
      if (pos_ >= text_.size()) return Error("unterminated object");
      if (text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (text_[pos_] == '}') {
        ++pos_;
        break;
      }
      return Error("expected ',' or '}' in object");
    }
    *out = Json(std::move(items));
    return absl::OkStatus();
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

void DumpString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
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
      default:
        if (c < 0x20) {
          out->append(absl::StrFormat("\\u%04x", c));
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void Newline(std::string* out, int indent, int depth) {
  if (indent < 0) return;
  out->push_back('\n');
  out->append(static_cast<size_t>(indent) * static_cast<size_t>(depth), ' ');
}

}  // namespace

const Json& Json::operator[](const std::string& key) const {
  auto it = object_.find(key);
  return it == object_.end() ? NullJson() : it->second;
}

Json& Json::operator[](const std::string& key) {
  if (type_ == Type::kNull) type_ = Type::kObject;
  return object_[key];
}

void Json::push_back(Json value) {
  if (type_ == Type::kNull) type_ = Type::kArray;
  array_.push_back(std::move(value));
}

std::string Json::Dump(int indent) const {
  std::string out;
  DumpTo(&out, indent, 0);
  return out;
}

void Json::DumpTo(std::string* out, int indent, int depth) const {
  switch (type_) {
    case Type::kNull:
      out->append("null");
      break;
    case Type::kBool:
      out->append(bool_ ? "true" : "false");
      break;
    case Type::kNumber:
      if (!std::isfinite(number_)) {
        out->append("null");
      } else if (number_ == std::floor(number_) && std::fabs(number_) < 9.0e15) {
        out->append(absl::StrCat(static_cast<int64_t>(number_)));
      } else {
        out->append(absl::StrFormat("%.9g", number_));
      }
      break;
    case Type::kString:
      DumpString(string_, out);
      break;
    case Type::kArray: {
      out->push_back('[');
      bool first = true;
      for (const Json& item : array_) {
        if (!first) out->push_back(',');
        first = false;
        Newline(out, indent, depth + 1);
        item.DumpTo(out, indent, depth + 1);
      }
      if (!array_.empty()) Newline(out, indent, depth);
      out->push_back(']');
      break;
    }
    case Type::kObject: {
      out->push_back('{');
      bool first = true;
      for (const auto& [key, value] : object_) {
        if (!first) out->push_back(',');
        first = false;
        Newline(out, indent, depth + 1);
        DumpString(key, out);
        out->append(indent < 0 ? ":" : ": ");
        value.DumpTo(out, indent, depth + 1);
      }
      if (!object_.empty()) Newline(out, indent, depth);
      out->push_back('}');
      break;
    }
  }
}

absl::StatusOr<Json> ParseJson(absl::string_view text) { return Parser(text).ParseDocument(); }

absl::StatusOr<double> GetNumber(const Json& object, const std::string& key) {
  const Json& value = object[key];
  if (value.is_null()) return absl::NotFoundError(absl::StrCat("missing field '", key, "'"));
  if (!value.is_number()) {
    return absl::InvalidArgumentError(absl::StrCat("field '", key, "' must be a number"));
  }
  return value.number_value();
}

absl::StatusOr<int64_t> GetInt(const Json& object, const std::string& key) {
  absl::StatusOr<double> number = GetNumber(object, key);
  if (!number.ok()) return number.status();
  if (*number != std::floor(*number) || std::fabs(*number) > 9.0e15) {
    return absl::InvalidArgumentError(absl::StrCat("field '", key, "' must be an integer"));
  }
  return static_cast<int64_t>(*number);
}

absl::StatusOr<std::string> GetString(const Json& object, const std::string& key) {
  const Json& value = object[key];
  if (value.is_null()) return absl::NotFoundError(absl::StrCat("missing field '", key, "'"));
  if (!value.is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("field '", key, "' must be a string"));
  }
  return value.string_value();
}

absl::StatusOr<bool> GetBool(const Json& object, const std::string& key) {
  const Json& value = object[key];
  if (value.is_null()) return absl::NotFoundError(absl::StrCat("missing field '", key, "'"));
  if (!value.is_bool()) {
    return absl::InvalidArgumentError(absl::StrCat("field '", key, "' must be true or false"));
  }
  return value.bool_value();
}

}  // namespace semshare
