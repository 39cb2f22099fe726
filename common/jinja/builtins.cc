#include "common/jinja/builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/jinja/python_format.h"
#include "common/status_macros.h"
#include "common/utf8.h"

namespace semshare::jinja {
namespace {

absl::Status TypeError(absl::string_view message) { return absl::InvalidArgumentError(message); }

// str.isspace() for a code point.
bool IsPythonSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}

struct Char {
  char32_t code;
  size_t offset;
  size_t length;
};

std::vector<Char> DecodeChars(absl::string_view text) {
  std::vector<Char> chars;
  chars.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    char32_t code = 0;
    int length = 1;
    if (!DecodeUtf8Char(text.substr(i), &code, &length)) code = 0xFFFD;
    chars.push_back(Char{code, i, static_cast<size_t>(length)});
    i += length;
  }
  return chars;
}

// str.strip/lstrip/rstrip: whitespace, or the characters of `chars`.
std::string Strip(absl::string_view text, const Value* chars, bool left, bool right) {
  const std::vector<Char> decoded = DecodeChars(text);
  std::vector<char32_t> set;
  const bool use_set = chars != nullptr && chars->is_string();
  if (use_set) {
    for (const Char& c : DecodeChars(chars->string_value())) set.push_back(c.code);
  }
  const auto strip = [&](char32_t c) {
    return use_set ? std::find(set.begin(), set.end(), c) != set.end() : IsPythonSpace(c);
  };
  size_t begin = 0;
  size_t end = decoded.size();
  while (left && begin < end && strip(decoded[begin].code)) ++begin;
  while (right && end > begin && strip(decoded[end - 1].code)) --end;
  if (begin == end) return "";
  const size_t from = decoded[begin].offset;
  const size_t to = decoded[end - 1].offset + decoded[end - 1].length;
  return std::string(text.substr(from, to - from));
}

std::string Upper(absl::string_view text) { return absl::AsciiStrToUpper(text); }
std::string Lower(absl::string_view text) { return absl::AsciiStrToLower(text); }

std::string Capitalize(absl::string_view text) {
  std::string out = Lower(text);
  if (!out.empty()) out[0] = absl::ascii_toupper(out[0]);
  return out;
}

// Python's str.title(): a letter after a non-letter is upper-cased, after a letter lowered.
std::string PythonTitle(absl::string_view text) {
  std::string out(text);
  bool previous_cased = false;
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (absl::ascii_isalpha(byte)) {
      c = previous_cased ? absl::ascii_tolower(byte) : absl::ascii_toupper(byte);
      previous_cased = true;
    } else {
      previous_cased = byte >= 0x80;
    }
  }
  return out;
}

// jinja2's title filter: words start after whitespace or one of - ( { [ <.
std::string JinjaTitle(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool word_start = true;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    const bool delimiter =
        absl::ascii_isspace(byte) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (delimiter) {
      out.push_back(c);
      word_start = true;
    } else {
      out.push_back(word_start ? absl::ascii_toupper(byte) : absl::ascii_tolower(byte));
      word_start = false;
    }
  }
  return out;
}

std::string Replace(absl::string_view text, absl::string_view from, absl::string_view to,
                    int64_t count) {
  std::string out;
  if (from.empty()) {
    const std::vector<Char> chars = DecodeChars(text);
    int64_t done = 0;
    for (const Char& c : chars) {
      if (count < 0 || done < count) {
        absl::StrAppend(&out, to);
        ++done;
      }
      absl::StrAppend(&out, text.substr(c.offset, c.length));
    }
    if (count < 0 || done < count) absl::StrAppend(&out, to);
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t hit = text.find(from, pos);
    if (hit == absl::string_view::npos) break;
    absl::StrAppend(&out, text.substr(pos, hit - pos));
    absl::StrAppend(&out, to);
    pos = hit + from.size();
    ++done;
  }
  absl::StrAppend(&out, text.substr(pos));
  return out;
}

absl::StatusOr<Value> Split(absl::string_view text, const Value* separator,
                            const Value* max_split) {
  const int64_t limit =
      max_split != nullptr && max_split->is_number() ? max_split->int_value() : -1;
  ValueList parts;
  if (separator == nullptr || separator->is_none()) {
    const std::vector<Char> chars = DecodeChars(text);
    size_t i = 0;
    while (i < chars.size()) {
      while (i < chars.size() && IsPythonSpace(chars[i].code)) ++i;
      if (i == chars.size()) break;
      if (limit >= 0 && static_cast<int64_t>(parts.size()) == limit) {
        size_t end = chars.size();
        while (end > i && IsPythonSpace(chars[end - 1].code)) --end;
        parts.emplace_back(std::string(text.substr(
            chars[i].offset, chars[end - 1].offset + chars[end - 1].length - chars[i].offset)));
        break;
      }
      const size_t start = i;
      while (i < chars.size() && !IsPythonSpace(chars[i].code)) ++i;
      parts.emplace_back(std::string(text.substr(
          chars[start].offset, chars[i - 1].offset + chars[i - 1].length - chars[start].offset)));
    }
    return Value(std::move(parts));
  }
  if (!separator->is_string()) return TypeError("split: the separator must be a string");
  const std::string& sep = separator->string_value();
  if (sep.empty()) return TypeError("split: empty separator");
  size_t pos = 0;
  while (limit < 0 || static_cast<int64_t>(parts.size()) < limit) {
    const size_t hit = text.find(sep, pos);
    if (hit == absl::string_view::npos) break;
    parts.emplace_back(std::string(text.substr(pos, hit - pos)));
    pos = hit + sep.size();
  }
  parts.emplace_back(std::string(text.substr(pos)));
  return Value(std::move(parts));
}

absl::StatusOr<const std::string*> StringArg(const Args& args, size_t index, absl::string_view name,
                                             absl::string_view what) {
  const Value* value = args.Get(index, name);
  if (value == nullptr || !value->is_string()) {
    return TypeError(absl::StrCat(what, ": argument '", name, "' must be a string"));
  }
  return &value->string_value();
}

int64_t IntArg(const Args& args, size_t index, absl::string_view name, int64_t fallback) {
  const Value* value = args.Get(index, name);
  return value != nullptr && value->is_number() ? value->int_value() : fallback;
}

bool BoolArg(const Args& args, size_t index, absl::string_view name, bool fallback) {
  const Value* value = args.Get(index, name);
  return value != nullptr ? value->Truthy() : fallback;
}

// `a.b.c` on an item, as jinja2's make_attrgetter does for attribute= arguments.
Value GetAttribute(const Value& item, absl::string_view path) {
  Value current = item;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (current.is_dict() || current.is_namespace()) {
      const Value* found = current.dict().Find(part);
      current = found != nullptr ? *found : Value::Undefined(std::string(part));
    } else if (current.is_list()) {
      int64_t index = 0;
      if (absl::SimpleAtoi(part, &index) && index >= 0 &&
          static_cast<size_t>(index) < current.list().size()) {
        current = current.list()[index];
      } else {
        current = Value::Undefined(std::string(part));
      }
    } else {
      current = Value::Undefined(std::string(part));
    }
  }
  return current;
}

absl::StatusOr<int64_t> Length(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kString:
      return static_cast<int64_t>(DecodeChars(value.string_value()).size());
    case Value::Kind::kList:
      return static_cast<int64_t>(value.list().size());
    case Value::Kind::kDict:
    case Value::Kind::kNamespace:
      return static_cast<int64_t>(value.dict().size());
    case Value::Kind::kUndefined:
      return 0;
    default:
      return TypeError(absl::StrCat("object of type '", TypeName(value), "' has no len()"));
  }
}

double RoundHalfEven(double value) { return std::nearbyint(value); }

absl::StatusOr<Value> ToInt(const Value& value, const Value& fallback) {
  if (value.is_bool() || value.is_int()) return Value(value.int_value());
  if (value.is_float()) {
    if (!std::isfinite(value.float_value())) return fallback;
    return Value(static_cast<int64_t>(std::trunc(value.float_value())));
  }
  if (value.is_string()) {
    const std::string text = Strip(value.string_value(), nullptr, true, true);
    int64_t parsed = 0;
    if (absl::SimpleAtoi(text, &parsed)) return Value(parsed);
    double as_double = 0;
    if (absl::SimpleAtod(text, &as_double) && std::isfinite(as_double)) {
      return Value(static_cast<int64_t>(std::trunc(as_double)));
    }
  }
  return fallback;
}

absl::StatusOr<Value> ToFloat(const Value& value, const Value& fallback) {
  if (value.is_number()) return Value(value.float_value());
  if (value.is_string()) {
    double parsed = 0;
    if (absl::SimpleAtod(Strip(value.string_value(), nullptr, true, true), &parsed)) {
      return Value(parsed);
    }
  }
  return fallback;
}

absl::StatusOr<Value> Indent(const Value& value, const Args& args) {
  const Value* width = args.Get(0, "width");
  std::string indention = "    ";
  if (width != nullptr && width->is_string()) {
    indention = width->string_value();
  } else if (width != nullptr && width->is_number()) {
    indention = std::string(static_cast<size_t>(std::max<int64_t>(0, width->int_value())), ' ');
  }
  const bool first = BoolArg(args, 1, "first", false);
  const bool blank = BoolArg(args, 2, "blank", false);
  const std::string text = ToPythonString(value) + "\n";
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  lines.pop_back();
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += "\n";
      if (blank || !lines[i].empty()) out += indention;
    }
    out += lines[i];
  }
  if (first) out = indention + out;
  return Value(std::move(out));
}

std::string HtmlEscape(absl::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// select/reject/selectattr/rejectattr: `test_index` is where the test name sits in args.
absl::StatusOr<Value> SelectOrReject(const Value& value, const Args& args, bool select,
                                     bool by_attribute) {
  SEMSHARE_ASSIGN_OR_RETURN(ValueList items, IterableItems(value));
  std::string attribute;
  size_t next = 0;
  if (by_attribute) {
    const Value* attr = args.Get(0, "attribute");
    if (attr == nullptr || !attr->is_string()) {
      return TypeError("selectattr/rejectattr: the attribute must be a string");
    }
    attribute = attr->string_value();
    next = 1;
  }
  std::string test;
  Args test_args;
  if (next < args.positional.size()) {
    if (!args.positional[next].is_string()) return TypeError("select: the test must be a name");
    test = args.positional[next].string_value();
    test_args.positional.assign(args.positional.begin() + static_cast<int64_t>(next) + 1,
                                args.positional.end());
  }
  ValueList out;
  out.reserve(items.size());
  for (const Value& item : items) {
    const Value subject = by_attribute ? GetAttribute(item, attribute) : item;
    bool passed = false;
    if (test.empty()) {
      passed = subject.Truthy();
    } else {
      SEMSHARE_ASSIGN_OR_RETURN(passed, ApplyTest(test, subject, test_args));
    }
    if (passed == select) out.push_back(item);
  }
  return Value(std::move(out));
}

absl::StatusOr<Value> Map(const Value& value, const Args& args) {
  SEMSHARE_ASSIGN_OR_RETURN(ValueList items, IterableItems(value));
  ValueList out;
  out.reserve(items.size());
  for (const auto& [name, attribute] : args.keyword) {
    if (name != "attribute") continue;
    if (!attribute.is_string()) return TypeError("map: the attribute must be a string");
    const Value* fallback = args.Get(static_cast<size_t>(-1), "default");
    for (const Value& item : items) {
      Value mapped = GetAttribute(item, attribute.string_value());
      if (mapped.is_undefined() && fallback != nullptr) mapped = *fallback;
      out.push_back(std::move(mapped));
    }
    return Value(std::move(out));
  }
  if (args.positional.empty() || !args.positional[0].is_string()) {
    return TypeError("map: needs a filter name or attribute=");
  }
  Args filter_args;
  filter_args.positional.assign(args.positional.begin() + 1, args.positional.end());
  filter_args.keyword = args.keyword;
  for (const Value& item : items) {
    SEMSHARE_ASSIGN_OR_RETURN(Value mapped,
                              ApplyFilter(args.positional[0].string_value(), item, filter_args));
    out.push_back(std::move(mapped));
  }
  return Value(std::move(out));
}

absl::StatusOr<Value> Unique(const Value& value, const Args& args) {
  SEMSHARE_ASSIGN_OR_RETURN(ValueList items, IterableItems(value));
  const bool case_sensitive = BoolArg(args, 0, "case_sensitive", false);
  const Value* attribute = args.Get(1, "attribute");
  ValueList out;
  std::vector<Value> seen;
  for (const Value& item : items) {
    Value key = attribute != nullptr && attribute->is_string()
                    ? GetAttribute(item, attribute->string_value())
                    : item;
    if (!case_sensitive && key.is_string()) key = Value(Lower(key.string_value()));
    const bool duplicate =
        std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return ValuesEqual(s, key); });
    if (duplicate) continue;
    seen.push_back(std::move(key));
    out.push_back(item);
  }
  return Value(std::move(out));
}

absl::StatusOr<Value> Sort(const Value& value, const Args& args) {
  SEMSHARE_ASSIGN_OR_RETURN(ValueList items, IterableItems(value));
  const bool reverse = BoolArg(args, 0, "reverse", false);
  const bool case_sensitive = BoolArg(args, 1, "case_sensitive", false);
  const Value* attribute = args.Get(2, "attribute");
  std::vector<std::pair<Value, Value>> keyed;
  keyed.reserve(items.size());
  for (const Value& item : items) {
    Value key = attribute != nullptr && attribute->is_string()
                    ? GetAttribute(item, attribute->string_value())
                    : item;
    if (!case_sensitive && key.is_string()) key = Value(Lower(key.string_value()));
    keyed.emplace_back(std::move(key), item);
  }
  absl::Status status;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    absl::StatusOr<int> order = CompareValues(a.first, b.first, "<");
    if (!order.ok()) {
      status = order.status();
      return false;
    }
    return reverse ? *order > 0 : *order < 0;
  });
  if (!status.ok()) return status;
  ValueList out;
  out.reserve(keyed.size());
  for (auto& entry : keyed) out.push_back(std::move(entry.second));
  return Value(std::move(out));
}

absl::StatusOr<Value> Round(const Value& value, const Args& args) {
  if (!value.is_number()) {
    return TypeError(absl::StrCat("round: expects a number, got '", TypeName(value), "'"));
  }
  const int64_t precision = IntArg(args, 0, "precision", 0);
  const Value* method_arg = args.Get(1, "method");
  const std::string method =
      method_arg != nullptr && method_arg->is_string() ? method_arg->string_value() : "common";
  if (method != "common" && method != "ceil" && method != "floor") {
    return TypeError("round: method must be 'common', 'ceil' or 'floor'");
  }
  if (method == "common" && !value.is_float() && precision >= 0) {
    return Value(value.int_value());
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = value.float_value() * scale;
  const double rounded = method == "ceil"    ? std::ceil(x)
                         : method == "floor" ? std::floor(x)
                                             : RoundHalfEven(x);
  return Value(rounded / scale);
}

absl::StatusOr<Value> ToJsonFilter(const Value& value, const Args& args) {
  const Value* ensure_ascii = args.Get(0, "ensure_ascii");
  if (ensure_ascii != nullptr && ensure_ascii->Truthy()) {
    return TypeError("tojson: ensure_ascii=True is not supported");
  }
  const Value* separators = args.Get(2, "separators");
  if (separators != nullptr && !separators->is_none()) {
    return TypeError("tojson: separators= is not supported");
  }
  const Value* indent = args.Get(1, "indent");
  int indent_width = -1;
  if (indent != nullptr && !indent->is_none()) {
    if (!indent->is_number()) return TypeError("tojson: indent must be an integer");
    indent_width = static_cast<int>(std::clamp<int64_t>(indent->int_value(), 0, 64));
  }
  SEMSHARE_ASSIGN_OR_RETURN(std::string json,
                            ToJson(value, indent_width, BoolArg(args, 3, "sort_keys", false)));
  return Value(std::move(json));
}

}  // namespace

const Value* Args::Get(size_t index, absl::string_view name) const {
  for (const auto& [key, value] : keyword) {
    if (key == name) return &value;
  }
  return index < positional.size() ? &positional[index] : nullptr;
}

std::string TypeName(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kUndefined:
      return "Undefined";
    case Value::Kind::kNone:
      return "NoneType";
    case Value::Kind::kBool:
      return "bool";
    case Value::Kind::kInt:
      return "int";
    case Value::Kind::kFloat:
      return "float";
    case Value::Kind::kString:
      return "str";
    case Value::Kind::kList:
      return "list";
    case Value::Kind::kDict:
      return "dict";
    case Value::Kind::kNamespace:
      return "Namespace";
    case Value::Kind::kCallable:
      return "function";
  }
  return "object";
}

std::vector<std::string> SplitCharacters(absl::string_view text) {
  std::vector<std::string> out;
  for (const Char& c : DecodeChars(text)) out.emplace_back(text.substr(c.offset, c.length));
  return out;
}

absl::StatusOr<ValueList> IterableItems(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kUndefined:
      return ValueList{};
    case Value::Kind::kList:
      return value.list();
    case Value::Kind::kDict: {
      ValueList keys;
      keys.reserve(value.dict().size());
      for (const ValueDict::Item& item : value.dict().items()) keys.emplace_back(item.first);
      return keys;
    }
    case Value::Kind::kString: {
      ValueList chars;
      for (std::string& c : SplitCharacters(value.string_value())) chars.emplace_back(std::move(c));
      return chars;
    }
    default:
      return TypeError(absl::StrCat("'", TypeName(value), "' object is not iterable"));
  }
}

absl::StatusOr<int> CompareValues(const Value& a, const Value& b, absl::string_view op) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      const double x = a.float_value();
      const double y = b.float_value();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    const int64_t x = a.int_value();
    const int64_t y = b.int_value();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const int order = a.string_value().compare(b.string_value());
    return order < 0 ? -1 : (order > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list()) {
    const ValueList& x = a.list();
    const ValueList& y = b.list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (ValuesEqual(x[i], y[i])) continue;
      return CompareValues(x[i], y[i], op);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  return TypeError(absl::StrCat("'", op, "' not supported between instances of '", TypeName(a),
                                "' and '", TypeName(b), "'"));
}

absl::StatusOr<bool> Contains(const Value& container, const Value& needle) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;
    case Value::Kind::kString:
      if (!needle.is_string()) {
        return TypeError(
            absl::StrCat("'in <string>' requires string as left operand, not ", TypeName(needle)));
      }
      return container.string_value().find(needle.string_value()) != std::string::npos;
    case Value::Kind::kList:
      return std::any_of(container.list().begin(), container.list().end(),
                         [&](const Value& item) { return ValuesEqual(item, needle); });
    case Value::Kind::kDict:
    case Value::Kind::kNamespace:
      return needle.is_string() && container.dict().Find(needle.string_value()) != nullptr;
    default:
      return TypeError(
          absl::StrCat("argument of type '", TypeName(container), "' is not iterable"));
  }
}

absl::StatusOr<Value> ApplyFilter(absl::string_view name, const Value& value, const Args& args) {
  if (name == "trim") {
    return Value(Strip(ToPythonString(value), args.Get(0, "chars"), true, true));
  }
  if (name == "length" || name == "count") {
    SEMSHARE_ASSIGN_OR_RETURN(int64_t length, Length(value));
    return Value(length);
  }
  if (name == "tojson") return ToJsonFilter(value, args);
  if (name == "items") {
    if (value.is_undefined()) return Value(ValueList{});
    if (!value.is_dict()) {
      return TypeError(absl::StrCat("items: expects a mapping, got '", TypeName(value), "'"));
    }
    ValueList pairs;
    pairs.reserve(value.dict().size());
    for (const ValueDict::Item& item : value.dict().items()) {
      pairs.emplace_back(ValueList{Value(item.first), item.second});
    }
    return Value(std::move(pairs));
  }
  if (name == "upper") return Value(Upper(ToPythonString(value)));
  if (name == "lower") return Value(Lower(ToPythonString(value)));
  if (name == "capitalize") return Value(Capitalize(ToPythonString(value)));
  if (name == "title") return Value(JinjaTitle(ToPythonString(value)));
  if (name == "first" || name == "last") {
    SEMSHARE_ASSIGN_OR_RETURN(ValueList items, IterableItems(value));
    if (items.empty()) return Value::Undefined(std::string(name));
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    SEMSHARE_ASSIGN_OR_RETURN(ValueList items, IterableItems(value));
    const Value* separator = args.Get(0, "d");
    const Value* attribute = args.Get(1, "attribute");
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0 && separator != nullptr) out += ToPythonString(*separator);
      out += ToPythonString(attribute != nullptr && attribute->is_string()
                                ? GetAttribute(items[i], attribute->string_value())
                                : items[i]);
    }
    return Value(std::move(out));
  }
  if (name == "default" || name == "d") {
    const Value* fallback = args.Get(0, "default_value");
    const bool boolean = BoolArg(args, 1, "boolean", false);
    if (value.is_undefined() || (boolean && !value.Truthy())) {
      return fallback != nullptr ? *fallback : Value("");
    }
    return value;
  }
  if (name == "replace") {
    SEMSHARE_ASSIGN_OR_RETURN(const std::string* from, StringArg(args, 0, "old", "replace"));
    SEMSHARE_ASSIGN_OR_RETURN(const std::string* to, StringArg(args, 1, "new", "replace"));
    return Value(Replace(ToPythonString(value), *from, *to, IntArg(args, 2, "count", -1)));
  }
  if (name == "string") return Value(ToPythonString(value));
  if (name == "safe") return value;
  if (name == "e" || name == "escape") return Value(HtmlEscape(ToPythonString(value)));
  if (name == "int") {
    const Value* fallback = args.Get(0, "default");
    return ToInt(value, fallback != nullptr ? *fallback : Value(0));
  }
  if (name == "float") {
    const Value* fallback = args.Get(0, "default");
    return ToFloat(value, fallback != nullptr ? *fallback : Value(0.0));
  }
  if (name == "list") {
    SEMSHARE_ASSIGN_OR_RETURN(ValueList items, IterableItems(value));
    return Value(std::move(items));
  }
  if (name == "reverse") {
    if (value.is_string()) {
      std::vector<std::string> chars = SplitCharacters(value.string_value());
      std::reverse(chars.begin(), chars.end());
      return Value(absl::StrJoin(chars, ""));
    }
    SEMSHARE_ASSIGN_OR_RETURN(ValueList items, IterableItems(value));
    std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (name == "select" || name == "reject") {
    return SelectOrReject(value, args, name == "select", /*by_attribute=*/false);
  }
  if (name == "selectattr" || name == "rejectattr") {
    return SelectOrReject(value, args, name == "selectattr", /*by_attribute=*/true);
  }
  if (name == "map") return Map(value, args);
  if (name == "unique") return Unique(value, args);
  if (name == "sort") return Sort(value, args);
  if (name == "round") return Round(value, args);
  if (name == "abs") {
    if (value.is_float()) return Value(std::fabs(value.float_value()));
    if (value.is_number())
      return Value(value.int_value() < 0 ? -value.int_value() : value.int_value());
    return TypeError(absl::StrCat("bad operand type for abs(): '", TypeName(value), "'"));
  }
  if (name == "indent") return Indent(value, args);
  return absl::NotFoundError(absl::StrCat("no filter named '", name, "'"));
}

absl::StatusOr<bool> ApplyTest(absl::string_view name, const Value& value, const Args& args) {
  const Value* other = args.Get(0, "other");
  const auto need_other = [&]() -> absl::Status {
    if (other == nullptr) return TypeError(absl::StrCat("test '", name, "' needs an argument"));
    return absl::OkStatus();
  };
  if (name == "defined") return !value.is_undefined();
  if (name == "undefined") return value.is_undefined();
  if (name == "none") return value.is_none();
  if (name == "string") return value.is_string();
  if (name == "number") return value.is_number();
  if (name == "integer") return value.is_int();
  if (name == "float") return value.is_float();
  if (name == "boolean") return value.is_bool();
  if (name == "true") return value.is_bool() && value.bool_value();
  if (name == "false") return value.is_bool() && !value.bool_value();
  if (name == "mapping") return value.is_dict();
  if (name == "sequence" || name == "iterable") {
    return value.is_string() || value.is_list() || value.is_dict();
  }
  if (name == "callable") return value.is_callable();
  if (name == "lower")
    return value.is_string() && Lower(value.string_value()) == value.string_value();
  if (name == "upper")
    return value.is_string() && Upper(value.string_value()) == value.string_value();
  if (name == "even" || name == "odd" || name == "divisibleby") {
    if (!value.is_number()) {
      return TypeError(
          absl::StrCat("test '", name, "' needs a number, got '", TypeName(value), "'"));
    }
    int64_t divisor = 2;
    if (name == "divisibleby") {
      SEMSHARE_RETURN_IF_ERROR(need_other());
      if (!other->is_number() || other->int_value() == 0) {
        return TypeError("divisibleby: needs a non-zero number");
      }
      divisor = other->int_value();
    }
    const int64_t remainder = value.int_value() % divisor;
    return name == "odd" ? remainder != 0 : remainder == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==" || name == "sameas") {
    SEMSHARE_RETURN_IF_ERROR(need_other());
    if (name == "sameas" && value.kind() != other->kind()) return false;
    return ValuesEqual(value, *other);
  }
  if (name == "ne" || name == "!=") {
    SEMSHARE_RETURN_IF_ERROR(need_other());
    return !ValuesEqual(value, *other);
  }
  if (name == "lt" || name == "lessthan" || name == "<" || name == "le" || name == "<=" ||
      name == "gt" || name == "greaterthan" || name == ">" || name == "ge" || name == ">=") {
    SEMSHARE_RETURN_IF_ERROR(need_other());
    SEMSHARE_ASSIGN_OR_RETURN(int order, CompareValues(value, *other, name));
    if (name == "lt" || name == "lessthan" || name == "<") return order < 0;
    if (name == "le" || name == "<=") return order <= 0;
    if (name == "gt" || name == "greaterthan" || name == ">") return order > 0;
    return order >= 0;
  }
  if (name == "in") {
    const Value* sequence = args.Get(0, "seq");
    if (sequence == nullptr) return TypeError("test 'in' needs an argument");
    return Contains(*sequence, value);
  }
  return absl::NotFoundError(absl::StrCat("no test named '", name, "'"));
}

absl::StatusOr<Value> CallMethod(const Value& object, absl::string_view method, const Args& args) {
  if (object.is_string()) {
    const std::string& text = object.string_value();
    if (method == "strip") return Value(Strip(text, args.Get(0, "chars"), true, true));
    if (method == "lstrip") return Value(Strip(text, args.Get(0, "chars"), true, false));
    if (method == "rstrip") return Value(Strip(text, args.Get(0, "chars"), false, true));
    if (method == "split") return Split(text, args.Get(0, "sep"), args.Get(1, "maxsplit"));
    if (method == "upper") return Value(Upper(text));
    if (method == "lower") return Value(Lower(text));
    if (method == "title") return Value(PythonTitle(text));
    if (method == "capitalize") return Value(Capitalize(text));
    if (method == "startswith" || method == "endswith") {
      const Value* affix = args.Get(0, method == "startswith" ? "prefix" : "suffix");
      if (affix == nullptr) return TypeError(absl::StrCat(method, ": needs an argument"));
      ValueList options = affix->is_list() ? affix->list() : ValueList{*affix};
      for (const Value& option : options) {
        if (!option.is_string()) return TypeError(absl::StrCat(method, ": needs strings"));
        const bool hit = method == "startswith" ? absl::StartsWith(text, option.string_value())
                                                : absl::EndsWith(text, option.string_value());
        if (hit) return Value(true);
      }
      return Value(false);
    }
    if (method == "replace") {
      SEMSHARE_ASSIGN_OR_RETURN(const std::string* from, StringArg(args, 0, "old", "replace"));
      SEMSHARE_ASSIGN_OR_RETURN(const std::string* to, StringArg(args, 1, "new", "replace"));
      return Value(Replace(text, *from, *to, IntArg(args, 2, "count", -1)));
    }
    if (method == "find" || method == "count") {
      SEMSHARE_ASSIGN_OR_RETURN(const std::string* sub, StringArg(args, 0, "sub", method));
      if (method == "find") {
        const size_t hit = text.find(*sub);
        if (hit == std::string::npos) return Value(-1);
        return Value(static_cast<int64_t>(DecodeChars(text.substr(0, hit)).size()));
      }
      if (sub->empty()) return Value(static_cast<int64_t>(DecodeChars(text).size() + 1));
      int64_t count = 0;
      for (size_t pos = text.find(*sub); pos != std::string::npos;
           pos = text.find(*sub, pos + sub->size())) {
        ++count;
      }
      return Value(count);
    }
    if (method == "join") {
      const Value* items_arg = args.Get(0, "iterable");
      if (items_arg == nullptr) return TypeError("join: needs an iterable");
      SEMSHARE_ASSIGN_OR_RETURN(ValueList items, IterableItems(*items_arg));
      std::string out;
      for (size_t i = 0; i < items.size(); ++i) {
        if (!items[i].is_string()) {
          return TypeError(absl::StrCat("join: sequence item ", i, ": expected str instance, ",
                                        TypeName(items[i]), " found"));
        }
        if (i > 0) out += text;
        out += items[i].string_value();
      }
      return Value(std::move(out));
    }
    if (method == "splitlines") {
      ValueList lines;
      for (absl::string_view line : absl::StrSplit(text, '\n')) lines.emplace_back(line);
      if (!text.empty() && text.back() == '\n') lines.pop_back();
      if (text.empty()) lines.clear();
      return Value(std::move(lines));
    }
    if (method == "removeprefix" || method == "removesuffix") {
      SEMSHARE_ASSIGN_OR_RETURN(const std::string* affix, StringArg(args, 0, "affix", method));
      absl::string_view view = text;
      if (method == "removeprefix") {
        absl::ConsumePrefix(&view, *affix);
      } else {
        absl::ConsumeSuffix(&view, *affix);
      }
      return Value(view);
    }
    if (method == "isdigit" || method == "isalpha" || method == "isspace") {
      if (text.empty()) return Value(false);
      for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        const bool ok = method == "isdigit"   ? absl::ascii_isdigit(byte)
                        : method == "isalpha" ? absl::ascii_isalpha(byte)
                                              : absl::ascii_isspace(byte);
        if (!ok) return Value(false);
      }
      return Value(true);
    }
  }
  if (object.is_dict()) {
    const ValueDict& dict = object.dict();
    if (method == "items") return ApplyFilter("items", object, Args{});
    if (method == "keys" || method == "values") {
      ValueList out;
      out.reserve(dict.size());
      for (const ValueDict::Item& item : dict.items()) {
        out.push_back(method == "keys" ? Value(item.first) : item.second);
      }
      return Value(std::move(out));
    }
    if (method == "get") {
      const Value* key = args.Get(0, "key");
      if (key == nullptr) return TypeError("get: needs a key");
      const Value* found = key->is_string() ? dict.Find(key->string_value()) : nullptr;
      if (found != nullptr) return *found;
      const Value* fallback = args.Get(1, "default");
      return fallback != nullptr ? *fallback : Value::None();
    }
  }
  return absl::NotFoundError(
      absl::StrCat("'", TypeName(object), "' object has no method '", method, "'"));
}

}  // namespace semshare::jinja
