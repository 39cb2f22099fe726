#ifndef SEMSHARE_COMMON_JINJA_TEMPLATE_H_
#define SEMSHARE_COMMON_JINJA_TEMPLATE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/jinja/value.h"

// A Jinja template engine for Hugging Face chat templates: jinja2's syntax and Python's value
// semantics, configured as transformers' apply_chat_template configures jinja2 (trim_blocks,
// lstrip_blocks, loop controls, tojson without HTML escaping, raise_exception, strftime_now).
namespace semshare::jinja {

struct ParseOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// Bounds that make a hostile template fail with ResourceExhausted instead of hanging or
// exhausting memory.
struct RenderLimits {
  // Bytes written in all, macro and {% set %} block output included.
  size_t max_output_bytes = size_t{8} << 20;
  // Loop iterations, statements and calls executed.
  int64_t max_steps = 2'000'000;
  // Macro calls inside macro calls.
  int max_call_depth = 64;
};

struct RenderOptions {
  RenderLimits limits;
  // What strftime_now() formats; absl::InfinitePast() means absl::Now().
  absl::Time now = absl::InfinitePast();
  absl::TimeZone time_zone = absl::UTCTimeZone();
};

struct Program;

class Template {
 public:
  // InvalidArgument "<what> (line L, column C)" on a syntax error.
  static absl::StatusOr<Template> Parse(absl::string_view source, const ParseOptions& options = {});

  // Renders with `context`'s keys (a dict) as the template's variables. Errors are
  // InvalidArgument with the line and column (raise_exception's message among them: see
  // IsRaisedByTemplate) or ResourceExhausted past a limit.
  absl::StatusOr<std::string> Render(const Value& context, const RenderOptions& options = {}) const;

 private:
  explicit Template(std::shared_ptr<const Program> program) : program_(std::move(program)) {}

  std::shared_ptr<const Program> program_;
};

// Whether a render failed because the template called raise_exception(message).
bool IsRaisedByTemplate(const absl::Status& status);

}  // namespace semshare::jinja

#endif  // SEMSHARE_COMMON_JINJA_TEMPLATE_H_
