#ifndef SEMSHARE_COMMON_JINJA_PYTHON_FORMAT_H_
#define SEMSHARE_COMMON_JINJA_PYTHON_FORMAT_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/jinja/value.h"

// How Python writes values, which is what HF chat templates were written against: repr() for
// printing lists and dicts, float repr, and json.dumps as transformers' tojson calls it.
namespace semshare::jinja {

// repr(float): the shortest round-trip digits, `1.0`, `1e+20`, `1e-05`, `inf`, `nan`.
std::string PythonFloatRepr(double value);

// repr(value); undefined is written as the empty string.
void AppendPythonRepr(const Value& value, std::string* out);

// json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=sort_keys), indent < 0 meaning
// None (", " and ": " separators). InvalidArgument for undefined, callables and namespaces,
// which json.dumps cannot serialise either.
absl::StatusOr<std::string> ToJson(const Value& value, int indent, bool sort_keys);

}  // namespace semshare::jinja

#endif  // SEMSHARE_COMMON_JINJA_PYTHON_FORMAT_H_
