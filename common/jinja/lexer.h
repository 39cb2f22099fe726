#ifndef SEMSHARE_COMMON_JINJA_LEXER_H_
#define SEMSHARE_COMMON_JINJA_LEXER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace semshare::jinja {

enum class TokenKind {
  kText,        // template data between tags, whitespace control already applied
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,  // text holds the decoded literal
  kInt,
  kFloat,
  kOperator,  // text holds the operator: + - * / // % ** ~ == != < > <= >= = . , : | ( ) [ ] { }
  kEof,
};

struct Token {
  TokenKind kind = TokenKind::kEof;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  size_t pos = 0;  // byte offset in the (normalised) source
};

// jinja2's lexer options; transformers renders chat templates with both on.
struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// jinja2 reads the source line by line: "\r\n" and "\r" become "\n", and one trailing newline
// is dropped (keep_trailing_newline=False).
std::string NormalizeSource(absl::string_view source);

// Splits a normalised source into tokens, ending with kEof.
absl::StatusOr<std::vector<Token>> Tokenize(absl::string_view source, const LexOptions& options);

// InvalidArgument "<message> (line L, column C)" for a byte offset in `source`.
absl::Status ErrorAt(absl::string_view source, size_t pos, absl::string_view message);
// " (line L, column C)".
std::string LocationSuffix(absl::string_view source, size_t pos);

}  // namespace semshare::jinja

#endif  // SEMSHARE_COMMON_JINJA_LEXER_H_
