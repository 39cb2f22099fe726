#ifndef SEMSHARE_COMMON_JSON_H_
#define SEMSHARE_COMMON_JSON_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace semshare {

// A small JSON value: enough for Hugging Face config/tokenizer files, safetensors headers and
// the tools' JSON output. Objects keep keys sorted, which makes output deterministic.
class Json {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json>;

  Json() = default;
  Json(std::nullptr_t) {}                                    // NOLINT(google-explicit-constructor)
  Json(bool value) : type_(Type::kBool), bool_(value) {}     // NOLINT
  Json(int value) : type_(Type::kNumber), number_(value) {}  // NOLINT
  Json(int64_t value) : type_(Type::kNumber), number_(static_cast<double>(value)) {}   // NOLINT
  Json(uint64_t value) : type_(Type::kNumber), number_(static_cast<double>(value)) {}  // NOLINT
  Json(double value) : type_(Type::kNumber), number_(value) {}                         // NOLINT
  Json(const char* value) : type_(Type::kString), string_(value) {}                    // NOLINT
  Json(std::string value) : type_(Type::kString), string_(std::move(value)) {}         // NOLINT
  Json(Array value) : type_(Type::kArray), array_(std::move(value)) {}                 // NOLINT
  Json(Object value) : type_(Type::kObject), object_(std::move(value)) {}              // NOLINT

  static Json MakeArray() { return Json(Array{}); }
  static Json MakeObject() { return Json(Object{}); }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  // Accessors return a neutral value when the type does not match; callers that must be
  // strict check the type first (see the Get* helpers below).
  bool bool_value() const { return bool_; }
  double number_value() const { return number_; }
  const std::string& string_value() const { return string_; }
  const Array& array_items() const { return array_; }
  Array& array_items() { return array_; }
  const Object& object_items() const { return object_; }
  Object& object_items() { return object_; }

  bool contains(const std::string& key) const { return object_.count(key) > 0; }
  // Null when the key is absent or this is not an object.
  const Json& operator[](const std::string& key) const;
  Json& operator[](const std::string& key);  // Makes this an object if it is null.
  void push_back(Json value);                // Makes this an array if it is null.

  std::string Dump(int indent = -1) const;

 private:
  void DumpTo(std::string* out, int indent, int depth) const;

  Type type_ = Type::kNull;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  Array array_;
  Object object_;
};

// Parses RFC 8259 JSON. InvalidArgument names the byte offset of the first error.
absl::StatusOr<Json> ParseJson(absl::string_view text);

// Strict typed field access for validating documents: the error names the field.
absl::StatusOr<int64_t> GetInt(const Json& object, const std::string& key);
absl::StatusOr<double> GetNumber(const Json& object, const std::string& key);
absl::StatusOr<std::string> GetString(const Json& object, const std::string& key);
absl::StatusOr<bool> GetBool(const Json& object, const std::string& key);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_JSON_H_
