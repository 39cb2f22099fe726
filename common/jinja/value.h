#ifndef SEMSHARE_COMMON_JINJA_VALUE_H_
#define SEMSHARE_COMMON_JINJA_VALUE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace semshare::jinja {

class Value;
using ValueList = std::vector<Value>;

// A dict that keeps insertion order, as Python's does (tojson and items() print in it).
class ValueDict {
 public:
  using Item = std::pair<std::string, Value>;

  // Null when absent.
  const Value* Find(absl::string_view key) const;
  // Replaces the value of an existing key in place, or appends a new key.
  void Set(std::string key, Value value);
  const std::vector<Item>& items() const { return items_; }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }

 private:
  std::vector<Item> items_;
};

// A function value (a macro or a built-in); only the evaluator knows what is inside.
class Callable;

// A template value with Python's semantics: lists and dicts are shared, not copied, on
// assignment (templates cannot mutate them; namespace() objects are the one mutable kind).
class Value {
 public:
  enum class Kind {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kNamespace,
    kCallable
  };

  Value() = default;                                                             // undefined
  Value(bool value) : kind_(Kind::kBool), bool_(value) {}                        // NOLINT
  Value(int value) : kind_(Kind::kInt), int_(value) {}                           // NOLINT
  Value(int64_t value) : kind_(Kind::kInt), int_(value) {}                       // NOLINT
  Value(double value) : kind_(Kind::kFloat), float_(value) {}                    // NOLINT
  Value(const char* value) : kind_(Kind::kString), string_(value) {}             // NOLINT
  Value(std::string value) : kind_(Kind::kString), string_(std::move(value)) {}  // NOLINT
  Value(absl::string_view value) : kind_(Kind::kString), string_(value) {}       // NOLINT
  Value(ValueList value);                                                        // NOLINT
  Value(ValueDict value);                                                        // NOLINT

  static Value None();
  // `name` is what the template called it, for error messages.
  static Value Undefined(std::string name);
  static Value Namespace(ValueDict attributes);
  static Value Function(std::shared_ptr<const Callable> callable);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  // Python's numbers.Number, which bool is too (jinja2's `is number`).
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool bool_value() const { return bool_; }
  int64_t int_value() const { return is_bool() ? static_cast<int64_t>(bool_) : int_; }
  double float_value() const { return is_float() ? float_ : static_cast<double>(int_value()); }
  // The string, or for an undefined value the name it was looked up by.
  const std::string& string_value() const { return string_; }
  // Empty for anything that is not a list.
  const ValueList& list() const;
  // Empty for anything that is not a dict or a namespace.
  const ValueDict& dict() const;
  // Only for namespaces: the one mutation templates may do (`{% set ns.x = ... %}`).
  ValueDict* mutable_namespace() const;
  const std::shared_ptr<const Callable>& callable() const { return callable_; }

  // Python's truthiness: empty strings, lists and dicts, zero, none and undefined are false.
  bool Truthy() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool bool_ = false;
  int64_t int_ = 0;
  double float_ = 0;
  std::string string_;
  std::shared_ptr<const ValueList> list_;
  std::shared_ptr<ValueDict> dict_;
  std::shared_ptr<const Callable> callable_;
};

// Python's equality (1 == 1.0 == True; lists and dicts element-wise; undefined equals only
// undefined).
bool ValuesEqual(const Value& a, const Value& b);

// str(value) as Python prints it: `None`, `True`, `1.5`, `['a', 1]`, `{'k': 'v'}`; undefined
// prints as the empty string, as jinja2's default Undefined does.
std::string ToPythonString(const Value& value);

}  // namespace semshare::jinja

#endif  // SEMSHARE_COMMON_JINJA_VALUE_H_
