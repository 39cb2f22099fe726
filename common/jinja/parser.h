#ifndef SEMSHARE_COMMON_JINJA_PARSER_H_
#define SEMSHARE_COMMON_JINJA_PARSER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/jinja/ast.h"
#include "common/jinja/lexer.h"

namespace semshare::jinja {

// Deeper nesting of blocks or expressions than this is refused (the parser recurses).
inline constexpr int kMaxParseDepth = 128;

// Parses a normalised source (NormalizeSource) into a program. InvalidArgument with the line
// and column of the first syntax error.
absl::StatusOr<std::unique_ptr<Program>> ParseProgram(std::string source,
                                                      const LexOptions& options);

}  // namespace semshare::jinja

#endif  // SEMSHARE_COMMON_JINJA_PARSER_H_
