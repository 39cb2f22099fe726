#ifndef SEMSHARE_COMMON_JINJA_AST_H_
#define SEMSHARE_COMMON_JINJA_AST_H_

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/jinja/value.h"

// The parsed form of a template: plain structs the parser builds and the evaluator walks.
namespace semshare::jinja {

// The name a {% filter %} block's rendered body is bound to while its filters run.
inline constexpr char kFilterBodyName[] = "\x01filter_body";

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  kLiteral,    // literal
  kName,       // name
  kList,       // args
  kTuple,      // args
  kDict,       // args: key, value, key, value...
  kGetAttr,    // args[0].name
  kGetItem,    // args[0][args[1]]
  kSlice,      // args[0][args[1]:args[2]:args[3]], each bound may be null
  kCall,       // args[0](args[1..], kwargs)
  kFilter,     // args[0] | name(args[1..], kwargs)
  kTest,       // args[0] is [not] name(args[1..])
  kUnary,      // name (not, -, +) args[0]
  kBinary,     // args[0] name args[1]; name in + - * / // % ** ~ and or in notin
  kCompare,    // args[0] ops[0] args[1] ops[1] args[2]... (chained, Python style)
  kCondition,  // args[0] if args[1] else args[2] (args[2] may be null)
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  size_t pos = 0;
  Value literal;
  std::string name;
  bool negated = false;  // kTest: `is not`
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // kCompare
};

struct Node;
using Body = std::vector<std::unique_ptr<Node>>;

enum class NodeKind {
  kText,    // text
  kOutput,  // {{ expr }}
  kIf,      // conditions[i] -> bodies[i]; else_body
  kFor,     // for targets in expr [if filter]: body; else_body
  kSet,     // set targets = expr | set targets[0].attribute = expr | set targets[0] %}body{% endset
  kMacro,   // macro name(params) body
  kCallBlock,    // call(params) expr: body  (body is the caller() macro)
  kFilterBlock,  // filter <filters over a placeholder expr>: body
  kBreak,
  kContinue,
};

struct Param {
  std::string name;
  ExprPtr default_value;  // null when required
};

struct Node {
  NodeKind kind = NodeKind::kText;
  size_t pos = 0;
  std::string text;  // kText data; kMacro name; kSet namespace attribute
  ExprPtr expr;
  ExprPtr filter;  // kFor's inline `if`
  std::vector<std::string> targets;
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  Body body;
  Body else_body;
  bool has_else = false;
  std::vector<Param> params;
};

struct Program {
  std::string source;  // normalised, for error locations
  Body body;
};

}  // namespace semshare::jinja

#endif  // SEMSHARE_COMMON_JINJA_AST_H_
