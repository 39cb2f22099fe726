#ifndef SEMSHARE_COMMON_JINJA_BUILTINS_H_
#define SEMSHARE_COMMON_JINJA_BUILTINS_H_

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/jinja/value.h"

// jinja2's filters and tests and the Python str/dict methods chat templates call. Errors carry
// no location; the evaluator adds it.
namespace semshare::jinja {

struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // The argument at `index`, or passed as `name`; null when absent.
  const Value* Get(size_t index, absl::string_view name) const;
};

// Python's type name for messages: str, int, float, bool, NoneType, list, dict, ...
std::string TypeName(const Value& value);

// The values a for loop or a filter iterates: list items, dict keys, the characters of a
// string; nothing for undefined. InvalidArgument for anything else.
absl::StatusOr<ValueList> IterableItems(const Value& value);

// The characters (code points, as UTF-8) of a string.
std::vector<std::string> SplitCharacters(absl::string_view text);

// Python's ordering for <, <=, >, >=: numbers with numbers, strings with strings, lists
// element-wise; InvalidArgument ("'<' not supported ...") for anything else.
absl::StatusOr<int> CompareValues(const Value& a, const Value& b, absl::string_view op);

// Python's `needle in container` for strings (substring), lists and dicts (keys); false for
// undefined.
absl::StatusOr<bool> Contains(const Value& container, const Value& needle);

// NotFound when there is no such filter.
absl::StatusOr<Value> ApplyFilter(absl::string_view name, const Value& value, const Args& args);

// NotFound when there is no such test.
absl::StatusOr<bool> ApplyTest(absl::string_view name, const Value& value, const Args& args);

// `object.method(args)` for strings and dicts; NotFound when the object has no such method.
absl::StatusOr<Value> CallMethod(const Value& object, absl::string_view method, const Args& args);

}  // namespace semshare::jinja

#endif  // SEMSHARE_COMMON_JINJA_BUILTINS_H_
