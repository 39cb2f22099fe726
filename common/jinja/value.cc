#include "common/jinja/value.h"

#include <utility>

#include "common/jinja/python_format.h"

namespace semshare::jinja {

const Value* ValueDict::Find(absl::string_view key) const {
  for (const Item& item : items_) {
    if (item.first == key) return &item.second;
  }
  return nullptr;
}

void ValueDict::Set(std::string key, Value value) {
  for (Item& item : items_) {
    if (item.first == key) {
      item.second = std::move(value);
      return;
    }
  }
  items_.emplace_back(std::move(key), std::move(value));
}

Value::Value(ValueList value)
    : kind_(Kind::kList), list_(std::make_shared<const ValueList>(std::move(value))) {}

Value::Value(ValueDict value)
    : kind_(Kind::kDict), dict_(std::make_shared<ValueDict>(std::move(value))) {}

Value Value::None() {
  Value value;
  value.kind_ = Kind::kNone;
  return value;
}

Value Value::Undefined(std::string name) {
  Value value;
  value.string_ = std::move(name);
  return value;
}

Value Value::Namespace(ValueDict attributes) {
  Value value(std::move(attributes));
  value.kind_ = Kind::kNamespace;
  return value;
}

Value Value::Function(std::shared_ptr<const Callable> callable) {
  Value value;
  value.kind_ = Kind::kCallable;
  value.callable_ = std::move(callable);
  return value;
}

const ValueList& Value::list() const {
  static const ValueList* const kEmpty = new ValueList();
  return list_ ? *list_ : *kEmpty;
}

const ValueDict& Value::dict() const {
  static const ValueDict* const kEmpty = new ValueDict();
  return dict_ ? *dict_ : *kEmpty;
}

ValueDict* Value::mutable_namespace() const { return is_namespace() ? dict_.get() : nullptr; }

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return bool_;
    case Kind::kInt:
      return int_ != 0;
    case Kind::kFloat:
      return float_ != 0;
    case Kind::kString:
      return !string_.empty();
    case Kind::kList:
      return !list().empty();
    case Kind::kDict:
      return !dict().empty();
    case Kind::kNamespace:
    case Kind::kCallable:
      return true;
  }
  return false;
}

bool ValuesEqual(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.float_value() == b.float_value();
    return a.int_value() == b.int_value();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kString:
      return a.string_value() == b.string_value();
    case Value::Kind::kList: {
      const ValueList& x = a.list();
      const ValueList& y = b.list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!ValuesEqual(x[i], y[i])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const ValueDict& x = a.dict();
      const ValueDict& y = b.dict();
      if (x.size() != y.size()) return false;
      for (const ValueDict::Item& item : x.items()) {
        const Value* other = y.Find(item.first);
        if (other == nullptr || !ValuesEqual(item.second, *other)) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace:
      return a.mutable_namespace() == b.mutable_namespace();
    case Value::Kind::kCallable:
      return a.callable() == b.callable();
    default:
      return false;
  }
}

std::string ToPythonString(const Value& value) {
  if (value.is_undefined()) return "";
  if (value.is_string()) return value.string_value();
  std::string out;
  AppendPythonRepr(value, &out);
  return out;
}

}  // namespace semshare::jinja
