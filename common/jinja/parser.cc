#include "common/jinja/parser.h"

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace semshare::jinja {
namespace {

ExprPtr MakeExpr(ExprKind kind, size_t pos) {
  auto expr = std::make_unique<Expr>();
  expr->kind = kind;
  expr->pos = pos;
  return expr;
}

class Parser {
 public:
  Parser(const std::string& source, std::vector<Token> tokens)
      : source_(source), tokens_(std::move(tokens)) {}

  absl::StatusOr<Body> ParseTemplate() {
    Body body;
    std::string end;
    SEMSHARE_RETURN_IF_ERROR(ParseBody({}, &body, &end));
    return body;
  }

 private:
  // Depth guard for the recursive descent: a template nested too deep is an error, not a
  // stack overflow.
  class DepthGuard {
   public:
    explicit DepthGuard(Parser* parser) : parser_(parser) { ++parser_->depth_; }
    ~DepthGuard() { --parser_->depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;

   private:
    Parser* parser_;
  };

  absl::Status CheckDepth() const {
    if (depth_ > kMaxParseDepth) {
      return ErrorAt(source_, Peek().pos,
                     absl::StrCat("template nests deeper than ", kMaxParseDepth, " levels"));
    }
    return absl::OkStatus();
  }

  const Token& Peek(size_t ahead = 0) const {
    const size_t i = std::min(index_ + ahead, tokens_.size() - 1);
    return tokens_[i];
  }
  const Token& Next() {
    const Token& token = tokens_[index_];
    if (index_ + 1 < tokens_.size()) ++index_;
    return token;
  }
  bool IsOp(absl::string_view op, size_t ahead = 0) const {
    return Peek(ahead).kind == TokenKind::kOperator && Peek(ahead).text == op;
  }
  bool IsName(absl::string_view name, size_t ahead = 0) const {
    return Peek(ahead).kind == TokenKind::kName && Peek(ahead).text == name;
  }
  bool AcceptOp(absl::string_view op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool AcceptName(absl::string_view name) {
    if (!IsName(name)) return false;
    Next();
    return true;
  }

  static std::string Describe(const Token& token) {
    switch (token.kind) {
      case TokenKind::kEof:
        return "end of template";
      case TokenKind::kBlockEnd:
        return "'%}'";
      case TokenKind::kVarEnd:
        return "'}}'";
      case TokenKind::kString:
        return "a string";
      default:
        return absl::StrCat("'", token.text, "'");
    }
  }

  absl::Status Unexpected(absl::string_view wanted) const {
    return ErrorAt(source_, Peek().pos,
                   absl::StrCat("expected ", wanted, ", found ", Describe(Peek())));
  }
  absl::Status ExpectOp(absl::string_view op) {
    if (AcceptOp(op)) return absl::OkStatus();
    return Unexpected(absl::StrCat("'", op, "'"));
  }
  absl::Status ExpectBlockEnd() {
    if (Peek().kind == TokenKind::kBlockEnd) {
      Next();
      return absl::OkStatus();
    }
    return Unexpected("'%}'");
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Peek().kind != TokenKind::kName) return Unexpected("a name");
    return Next().text;
  }

  // Parses nodes until `{% <one of end_tags>`; leaves the position after that tag name and
  // stores it in *end. With no end tags, parses to the end of the template.
  absl::Status ParseBody(std::initializer_list<absl::string_view> end_tags, Body* body,
                         std::string* end) {
    DepthGuard guard(this);
    SEMSHARE_RETURN_IF_ERROR(CheckDepth());
    while (true) {
      const Token& token = Peek();
      switch (token.kind) {
        case TokenKind::kEof:
          if (end_tags.size() == 0) return absl::OkStatus();
          return ErrorAt(
              source_, token.pos,
              absl::StrCat("unexpected end of template: missing '{% ", *end_tags.begin(), " %}'"));
        case TokenKind::kText: {
          auto node = std::make_unique<Node>();
          node->kind = NodeKind::kText;
          node->pos = token.pos;
          node->text = Next().text;
          body->push_back(std::move(node));
          break;
        }
        case TokenKind::kVarBegin: {
          auto node = std::make_unique<Node>();
          node->kind = NodeKind::kOutput;
          node->pos = Next().pos;
          SEMSHARE_ASSIGN_OR_RETURN(node->expr, ParseExpression());
          if (Peek().kind != TokenKind::kVarEnd) return Unexpected("'}}'");
          Next();
          body->push_back(std::move(node));
          break;
        }
        case TokenKind::kBlockBegin: {
          const size_t pos = Next().pos;
          if (Peek().kind != TokenKind::kName) return Unexpected("a tag name");
          const std::string& name = Peek().text;
          for (absl::string_view tag : end_tags) {
            if (name == tag) {
              *end = Next().text;
              return absl::OkStatus();
            }
          }
          SEMSHARE_RETURN_IF_ERROR(ParseStatement(pos, body));
          break;
        }
        default:
          return Unexpected("template data or a tag");
      }
    }
  }

  absl::Status ParseStatement(size_t pos, Body* body) {
    const Token& name_token = Peek();
    const std::string name = name_token.text;
    auto node = std::make_unique<Node>();
    node->pos = pos;
    if (name == "if") {
      Next();
      node->kind = NodeKind::kIf;
      std::string end = "elif";
      while (end == "elif") {
        SEMSHARE_ASSIGN_OR_RETURN(ExprPtr condition, ParseExpression());
        SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
        node->conditions.push_back(std::move(condition));
        node->bodies.emplace_back();
        SEMSHARE_RETURN_IF_ERROR(ParseBody({"endif", "elif", "else"}, &node->bodies.back(), &end));
      }
      if (end == "else") {
        SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
        node->has_else = true;
        SEMSHARE_RETURN_IF_ERROR(ParseBody({"endif"}, &node->else_body, &end));
      }
      SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
    } else if (name == "for") {
      Next();
      node->kind = NodeKind::kFor;
      do {
        SEMSHARE_ASSIGN_OR_RETURN(std::string target, ExpectName());
        node->targets.push_back(std::move(target));
      } while (AcceptOp(","));
      if (!AcceptName("in")) return Unexpected("'in'");
      SEMSHARE_ASSIGN_OR_RETURN(node->expr, ParseExpression(/*with_condition=*/false));
      if (AcceptName("if")) {
        SEMSHARE_ASSIGN_OR_RETURN(node->filter, ParseExpression());
      }
      if (IsName("recursive")) {
        return ErrorAt(source_, Peek().pos, "recursive for loops are not supported");
      }
      SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
      std::string end;
      SEMSHARE_RETURN_IF_ERROR(ParseBody({"endfor", "else"}, &node->body, &end));
      if (end == "else") {
        SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
        node->has_else = true;
        SEMSHARE_RETURN_IF_ERROR(ParseBody({"endfor"}, &node->else_body, &end));
      }
      SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
    } else if (name == "set") {
      Next();
      node->kind = NodeKind::kSet;
      SEMSHARE_ASSIGN_OR_RETURN(std::string target, ExpectName());
      node->targets.push_back(std::move(target));
      if (AcceptOp(".")) {
        SEMSHARE_ASSIGN_OR_RETURN(node->text, ExpectName());
      } else {
        while (AcceptOp(",")) {
          SEMSHARE_ASSIGN_OR_RETURN(std::string more, ExpectName());
          node->targets.push_back(std::move(more));
        }
      }
      if (AcceptOp("=")) {
        SEMSHARE_ASSIGN_OR_RETURN(node->expr, ParseTupleOrExpression());
        SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
      } else if (Peek().kind == TokenKind::kBlockEnd && node->targets.size() == 1 &&
                 node->text.empty()) {
        Next();
        std::string end;
        SEMSHARE_RETURN_IF_ERROR(ParseBody({"endset"}, &node->body, &end));
        SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
      } else {
        return Unexpected("'='");
      }
    } else if (name == "macro") {
      Next();
      node->kind = NodeKind::kMacro;
      SEMSHARE_ASSIGN_OR_RETURN(node->text, ExpectName());
      SEMSHARE_RETURN_IF_ERROR(ParseParams(&node->params));
      SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
      std::string end;
      SEMSHARE_RETURN_IF_ERROR(ParseBody({"endmacro"}, &node->body, &end));
      if (Peek().kind == TokenKind::kName) Next();  // `{% endmacro name %}`
      SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
    } else if (name == "call") {
      Next();
      node->kind = NodeKind::kCallBlock;
      if (IsOp("(")) SEMSHARE_RETURN_IF_ERROR(ParseParams(&node->params));
      SEMSHARE_ASSIGN_OR_RETURN(node->expr, ParseExpression());
      if (node->expr->kind != ExprKind::kCall) {
        return ErrorAt(source_, node->expr->pos, "{% call %} needs a macro call");
      }
      SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
      std::string end;
      SEMSHARE_RETURN_IF_ERROR(ParseBody({"endcall"}, &node->body, &end));
      SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
    } else if (name == "filter") {
      Next();
      node->kind = NodeKind::kFilterBlock;
      ExprPtr value = MakeExpr(ExprKind::kName, Peek().pos);
      value->name = kFilterBodyName;
      do {
        SEMSHARE_ASSIGN_OR_RETURN(value, ParseFilter(std::move(value)));
      } while (AcceptOp("|"));
      node->expr = std::move(value);
      SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
      std::string end;
      SEMSHARE_RETURN_IF_ERROR(ParseBody({"endfilter"}, &node->body, &end));
      SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
    } else if (name == "break" || name == "continue") {
      Next();
      node->kind = name == "break" ? NodeKind::kBreak : NodeKind::kContinue;
      SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
    } else if (name == "generation") {
      // transformers' AssistantTracker tag: marks the assistant's tokens, renders its body.
      Next();
      SEMSHARE_RETURN_IF_ERROR(ExpectBlockEnd());
      std::string end;
      SEMSHARE_RETURN_IF_ERROR(ParseBody({"endgeneration"}, body, &end));
      return ExpectBlockEnd();
    } else {
      return ErrorAt(source_, name_token.pos,
                     absl::StrCat("unknown or unsupported tag '", name, "'"));
    }
    body->push_back(std::move(node));
    return absl::OkStatus();
  }

  absl::Status ParseParams(std::vector<Param>* params) {
    SEMSHARE_RETURN_IF_ERROR(ExpectOp("("));
    while (!IsOp(")")) {
      if (!params->empty()) SEMSHARE_RETURN_IF_ERROR(ExpectOp(","));
      if (IsOp(")")) break;
      Param param;
      SEMSHARE_ASSIGN_OR_RETURN(param.name, ExpectName());
      if (AcceptOp("=")) {
        SEMSHARE_ASSIGN_OR_RETURN(param.default_value, ParseExpression());
      }
      params->push_back(std::move(param));
    }
    return ExpectOp(")");
  }

  // `a, b` without brackets is a tuple (in `set x = a, b`).
  absl::StatusOr<ExprPtr> ParseTupleOrExpression() {
    const size_t pos = Peek().pos;
    SEMSHARE_ASSIGN_OR_RETURN(ExprPtr first, ParseExpression());
    if (!IsOp(",")) return first;
    ExprPtr tuple = MakeExpr(ExprKind::kTuple, pos);
    tuple->args.push_back(std::move(first));
    while (AcceptOp(",")) {
      if (Peek().kind == TokenKind::kBlockEnd) break;
      SEMSHARE_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression());
      tuple->args.push_back(std::move(item));
    }
    return tuple;
  }

  absl::StatusOr<ExprPtr> ParseExpression(bool with_condition = true) {
    DepthGuard guard(this);
    SEMSHARE_RETURN_IF_ERROR(CheckDepth());
    SEMSHARE_ASSIGN_OR_RETURN(ExprPtr expr, ParseOr());
    while (with_condition && IsName("if")) {
      const size_t pos = Next().pos;
      ExprPtr condition_expr = MakeExpr(ExprKind::kCondition, pos);
      SEMSHARE_ASSIGN_OR_RETURN(ExprPtr condition, ParseOr());
      ExprPtr otherwise;
      if (AcceptName("else")) {
        SEMSHARE_ASSIGN_OR_RETURN(otherwise, ParseExpression());
      }
      condition_expr->args.push_back(std::move(expr));
      condition_expr->args.push_back(std::move(condition));
      condition_expr->args.push_back(std::move(otherwise));
      expr = std::move(condition_expr);
    }
    return expr;
  }

  ExprPtr Binary(absl::string_view op, size_t pos, ExprPtr left, ExprPtr right) {
    ExprPtr expr = MakeExpr(ExprKind::kBinary, pos);
    expr->name = std::string(op);
    expr->args.push_back(std::move(left));
    expr->args.push_back(std::move(right));
    return expr;
  }

  absl::StatusOr<ExprPtr> ParseOr() {
    SEMSHARE_ASSIGN_OR_RETURN(ExprPtr left, ParseAnd());
    while (IsName("or")) {
      const size_t pos = Next().pos;
      SEMSHARE_ASSIGN_OR_RETURN(ExprPtr right, ParseAnd());
      left = Binary("or", pos, std::move(left), std::move(right));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseAnd() {
    SEMSHARE_ASSIGN_OR_RETURN(ExprPtr left, ParseNot());
    while (IsName("and")) {
      const size_t pos = Next().pos;
      SEMSHARE_ASSIGN_OR_RETURN(ExprPtr right, ParseNot());
      left = Binary("and", pos, std::move(left), std::move(right));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseNot() {
    if (IsName("not")) {
      DepthGuard guard(this);
      SEMSHARE_RETURN_IF_ERROR(CheckDepth());
      ExprPtr expr = MakeExpr(ExprKind::kUnary, Next().pos);
      expr->name = "not";
      SEMSHARE_ASSIGN_OR_RETURN(ExprPtr operand, ParseNot());
      expr->args.push_back(std::move(operand));
      return expr;
    }
    return ParseCompare();
  }

  absl::StatusOr<ExprPtr> ParseCompare() {
    const size_t pos = Peek().pos;
    SEMSHARE_ASSIGN_OR_RETURN(ExprPtr first, ParseMath1());
    ExprPtr compare;
    while (true) {
      std::string op;
      if (Peek().kind == TokenKind::kOperator &&
          (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" || Peek().text == ">" ||
           Peek().text == "<=" || Peek().text == ">=")) {
        op = Next().text;
      } else if (IsName("in")) {
        Next();
        op = "in";
      } else if (IsName("not") && IsName("in", 1)) {
        Next();
        Next();
        op = "notin";
      } else {
        break;
      }
      if (!compare) {
        compare = MakeExpr(ExprKind::kCompare, pos);
        compare->args.push_back(std::move(first));
      }
      SEMSHARE_ASSIGN_OR_RETURN(ExprPtr operand, ParseMath1());
      compare->ops.push_back(std::move(op));
      compare->args.push_back(std::move(operand));
    }
    return compare ? std::move(compare) : std::move(first);
  }

  absl::StatusOr<ExprPtr> ParseMath1() {
    SEMSHARE_ASSIGN_OR_RETURN(ExprPtr left, ParseConcat());
    while (IsOp("+") || IsOp("-")) {
      const Token& op = Next();
      const std::string text = op.text;
      const size_t pos = op.pos;
      SEMSHARE_ASSIGN_OR_RETURN(ExprPtr right, ParseConcat());
      left = Binary(text, pos, std::move(left), std::move(right));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseConcat() {
    SEMSHARE_ASSIGN_OR_RETURN(ExprPtr left, ParseMath2());
    while (IsOp("~")) {
      const size_t pos = Next().pos;
      SEMSHARE_ASSIGN_OR_RETURN(ExprPtr right, ParseMath2());
      left = Binary("~", pos, std::move(left), std::move(right));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseMath2() {
    SEMSHARE_ASSIGN_OR_RETURN(ExprPtr left, ParsePow());
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const Token& op = Next();
      const std::string text = op.text;
      const size_t pos = op.pos;
      SEMSHARE_ASSIGN_OR_RETURN(ExprPtr right, ParsePow());
      left = Binary(text, pos, std::move(left), std::move(right));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParsePow() {
    SEMSHARE_ASSIGN_OR_RETURN(ExprPtr left, ParseUnary(true));
    while (IsOp("**")) {
      const size_t pos = Next().pos;
      SEMSHARE_ASSIGN_OR_RETURN(ExprPtr right, ParseUnary(true));
      left = Binary("**", pos, std::move(left), std::move(right));
    }
    return left;
  }

  absl::StatusOr<ExprPtr> ParseUnary(bool with_filter) {
    DepthGuard guard(this);
    SEMSHARE_RETURN_IF_ERROR(CheckDepth());
    ExprPtr expr;
    if (IsOp("-") || IsOp("+")) {
      expr = MakeExpr(ExprKind::kUnary, Peek().pos);
      expr->name = Next().text;
      SEMSHARE_ASSIGN_OR_RETURN(ExprPtr operand, ParseUnary(false));
      expr->args.push_back(std::move(operand));
    } else {
      SEMSHARE_ASSIGN_OR_RETURN(expr, ParsePrimary());
    }
    SEMSHARE_ASSIGN_OR_RETURN(expr, ParsePostfix(std::move(expr)));
    if (with_filter) {
      SEMSHARE_ASSIGN_OR_RETURN(expr, ParseFilterExpr(std::move(expr)));
    }
    return expr;
  }

  absl::StatusOr<ExprPtr> ParsePrimary() {
    DepthGuard guard(this);
    SEMSHARE_RETURN_IF_ERROR(CheckDepth());
    const Token& token = Peek();
    const size_t pos = token.pos;
    switch (token.kind) {
      case TokenKind::kName: {
        const std::string name = Next().text;
        ExprPtr expr = MakeExpr(ExprKind::kLiteral, pos);
        if (name == "true" || name == "True") {
          expr->literal = Value(true);
        } else if (name == "false" || name == "False") {
          expr->literal = Value(false);
        } else if (name == "none" || name == "None") {
          expr->literal = Value::None();
        } else {
          expr->kind = ExprKind::kName;
          expr->name = name;
        }
        return expr;
      }
      case TokenKind::kString: {
        std::string text = Next().text;
        while (Peek().kind == TokenKind::kString) text += Next().text;
        ExprPtr expr = MakeExpr(ExprKind::kLiteral, pos);
        expr->literal = Value(std::move(text));
        return expr;
      }
      case TokenKind::kInt: {
        ExprPtr expr = MakeExpr(ExprKind::kLiteral, pos);
        expr->literal = Value(Next().int_value);
        return expr;
      }
      case TokenKind::kFloat: {
        ExprPtr expr = MakeExpr(ExprKind::kLiteral, pos);
        expr->literal = Value(Next().float_value);
        return expr;
      }
      case TokenKind::kOperator:
        if (token.text == "(") {
          Next();
          if (AcceptOp(")")) return MakeExpr(ExprKind::kTuple, pos);
          SEMSHARE_ASSIGN_OR_RETURN(ExprPtr first, ParseExpression());
          if (AcceptOp(")")) return first;
          ExprPtr tuple = MakeExpr(ExprKind::kTuple, pos);
          tuple->args.push_back(std::move(first));
          while (AcceptOp(",")) {
            if (IsOp(")")) break;
            SEMSHARE_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression());
            tuple->args.push_back(std::move(item));
          }
          SEMSHARE_RETURN_IF_ERROR(ExpectOp(")"));
          return tuple;
        }
        if (token.text == "[") {
          Next();
          ExprPtr list = MakeExpr(ExprKind::kList, pos);
          while (!IsOp("]")) {
            if (!list->args.empty()) SEMSHARE_RETURN_IF_ERROR(ExpectOp(","));
            if (IsOp("]")) break;
            SEMSHARE_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression());
            list->args.push_back(std::move(item));
          }
          SEMSHARE_RETURN_IF_ERROR(ExpectOp("]"));
          return list;
        }
        if (token.text == "{") {
          Next();
          ExprPtr dict = MakeExpr(ExprKind::kDict, pos);
          while (!IsOp("}")) {
            if (!dict->args.empty()) SEMSHARE_RETURN_IF_ERROR(ExpectOp(","));
            if (IsOp("}")) break;
            SEMSHARE_ASSIGN_OR_RETURN(ExprPtr key, ParseExpression());
            SEMSHARE_RETURN_IF_ERROR(ExpectOp(":"));
            SEMSHARE_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression());
            dict->args.push_back(std::move(key));
            dict->args.push_back(std::move(value));
          }
          SEMSHARE_RETURN_IF_ERROR(ExpectOp("}"));
          return dict;
        }
        break;
      default:
        break;
    }
    return Unexpected("an expression");
  }

  absl::StatusOr<ExprPtr> ParsePostfix(ExprPtr expr) {
    while (true) {
      if (IsOp(".")) {
        const size_t pos = Next().pos;
        if (Peek().kind == TokenKind::kInt) {
          ExprPtr item = MakeExpr(ExprKind::kGetItem, pos);
          ExprPtr index = MakeExpr(ExprKind::kLiteral, Peek().pos);
          index->literal = Value(Next().int_value);
          item->args.push_back(std::move(expr));
          item->args.push_back(std::move(index));
          expr = std::move(item);
          continue;
        }
        ExprPtr attr = MakeExpr(ExprKind::kGetAttr, pos);
        SEMSHARE_ASSIGN_OR_RETURN(attr->name, ExpectName());
        attr->args.push_back(std::move(expr));
        expr = std::move(attr);
      } else if (IsOp("[")) {
        SEMSHARE_ASSIGN_OR_RETURN(expr, ParseSubscript(std::move(expr)));
      } else if (IsOp("(")) {
        SEMSHARE_ASSIGN_OR_RETURN(expr, ParseCall(std::move(expr)));
      } else {
        return expr;
      }
    }
  }

  absl::StatusOr<ExprPtr> ParseSubscript(ExprPtr target) {
    const size_t pos = Next().pos;  // [
    ExprPtr start;
    if (!IsOp(":")) {
      SEMSHARE_ASSIGN_OR_RETURN(start, ParseExpression());
    }
    if (!AcceptOp(":")) {
      SEMSHARE_RETURN_IF_ERROR(ExpectOp("]"));
      ExprPtr item = MakeExpr(ExprKind::kGetItem, pos);
      item->args.push_back(std::move(target));
      item->args.push_back(std::move(start));
      return item;
    }
    ExprPtr slice = MakeExpr(ExprKind::kSlice, pos);
    slice->args.push_back(std::move(target));
    slice->args.push_back(std::move(start));
    ExprPtr stop;
    ExprPtr step;
    if (!IsOp("]") && !IsOp(":")) {
      SEMSHARE_ASSIGN_OR_RETURN(stop, ParseExpression());
    }
    if (AcceptOp(":") && !IsOp("]")) {
      SEMSHARE_ASSIGN_OR_RETURN(step, ParseExpression());
    }
    SEMSHARE_RETURN_IF_ERROR(ExpectOp("]"));
    slice->args.push_back(std::move(stop));
    slice->args.push_back(std::move(step));
    return slice;
  }

  // Parses `(args, name=value)` into expr->args (after any already there) and expr->kwargs.
  absl::Status ParseArgs(Expr* expr) {
    SEMSHARE_RETURN_IF_ERROR(ExpectOp("("));
    bool first = true;
    while (!IsOp(")")) {
      if (!first) SEMSHARE_RETURN_IF_ERROR(ExpectOp(","));
      first = false;
      if (IsOp(")")) break;
      if (Peek().kind == TokenKind::kName && IsOp("=", 1)) {
        std::string name = Next().text;
        Next();
        SEMSHARE_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression());
        expr->kwargs.emplace_back(std::move(name), std::move(value));
      } else {
        if (!expr->kwargs.empty()) {
          return ErrorAt(source_, Peek().pos, "positional argument after keyword argument");
        }
        SEMSHARE_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression());
        expr->args.push_back(std::move(value));
      }
    }
    return ExpectOp(")");
  }

  absl::StatusOr<ExprPtr> ParseCall(ExprPtr callee) {
    ExprPtr call = MakeExpr(ExprKind::kCall, callee->pos);  // errors point at the callee
    call->args.push_back(std::move(callee));
    SEMSHARE_RETURN_IF_ERROR(ParseArgs(call.get()));
    return call;
  }

  absl::StatusOr<ExprPtr> ParseFilter(ExprPtr value) {
    ExprPtr filter = MakeExpr(ExprKind::kFilter, Peek().pos);
    SEMSHARE_ASSIGN_OR_RETURN(filter->name, ExpectName());
    filter->args.push_back(std::move(value));
    if (IsOp("(")) SEMSHARE_RETURN_IF_ERROR(ParseArgs(filter.get()));
    return filter;
  }

  absl::StatusOr<ExprPtr> ParseFilterExpr(ExprPtr expr) {
    while (true) {
      if (AcceptOp("|")) {
        SEMSHARE_ASSIGN_OR_RETURN(expr, ParseFilter(std::move(expr)));
      } else if (IsName("is")) {
        ExprPtr test = MakeExpr(ExprKind::kTest, Next().pos);
        test->negated = AcceptName("not");
        SEMSHARE_ASSIGN_OR_RETURN(test->name, ExpectName());
        test->args.push_back(std::move(expr));
        if (IsOp("(")) {
          SEMSHARE_RETURN_IF_ERROR(ParseArgs(test.get()));
        } else if ((Peek().kind == TokenKind::kName || Peek().kind == TokenKind::kString ||
                    Peek().kind == TokenKind::kInt || Peek().kind == TokenKind::kFloat ||
                    IsOp("(") || IsOp("[") || IsOp("{")) &&
                   !IsName("else") && !IsName("or") && !IsName("and")) {
          if (IsName("is")) {
            return ErrorAt(source_, Peek().pos, "tests cannot be chained with 'is'");
          }
          SEMSHARE_ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
          SEMSHARE_ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
          test->args.push_back(std::move(arg));
        }
        expr = std::move(test);
      } else if (IsOp("(")) {
        SEMSHARE_ASSIGN_OR_RETURN(expr, ParseCall(std::move(expr)));
      } else {
        return expr;
      }
    }
  }

  const std::string& source_;
  std::vector<Token> tokens_;
  size_t index_ = 0;
  int depth_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Program>> ParseProgram(std::string source,
                                                      const LexOptions& options) {
  auto program = std::make_unique<Program>();
  program->source = std::move(source);
  SEMSHARE_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(program->source, options));
  Parser parser(program->source, std::move(tokens));
  SEMSHARE_ASSIGN_OR_RETURN(program->body, parser.ParseTemplate());
  return program;
}

}  // namespace semshare::jinja
