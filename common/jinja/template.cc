#include "common/jinja/template.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/jinja/ast.h"
#include "common/jinja/builtins.h"
#include "common/jinja/lexer.h"
#include "common/jinja/parser.h"
#include "common/jinja/python_format.h"
#include "common/status_macros.h"

namespace semshare::jinja {

using Variables = absl::flat_hash_map<std::string, Value>;

// A macro (with the local variables visible where it was defined) or a built-in function.
class Callable {
 public:
  std::string name;
  const Node* macro = nullptr;  // null for built-ins
  std::shared_ptr<const Variables> closure;
  Value caller;  // a {% call %} block's body, passed to the macro as `caller`
};

namespace {

constexpr absl::string_view kRaisedPayload = "semshare.jinja/raised";

enum class Control { kNone, kBreak, kContinue };

struct Frame {
  Variables vars;
  std::shared_ptr<const Variables> closure;
  bool isolated = false;  // a macro's frame: the caller's locals are not visible
};

class Renderer {
 public:
  Renderer(const Program& program, const Value& context, const RenderOptions& options)
      : program_(program), context_(context), options_(options) {
    frames_.emplace_back();
    for (const char* name : {"range", "namespace", "raise_exception", "strftime_now", "dict"}) {
      auto callable = std::make_shared<Callable>();
      callable->name = name;
      builtins_[name] = Value::Function(std::move(callable));
    }
  }

  absl::StatusOr<std::string> Run() {
    std::string out;
    SEMSHARE_RETURN_IF_ERROR(ExecBody(program_.body, &out));
    return out;
  }

 private:
  absl::Status Error(size_t pos, absl::string_view message) const {
    return ErrorAt(program_.source, pos, message);
  }
  // Adds the location to an error from the built-ins.
  absl::Status Locate(size_t pos, const absl::Status& status) const {
    if (status.ok()) return status;
    absl::Status located(status.code(),
                         absl::StrCat(status.message(), LocationSuffix(program_.source, pos)));
    status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
      located.SetPayload(url, payload);
    });
    return located;
  }

  template <typename T>
  absl::StatusOr<T> Locate(size_t pos, absl::StatusOr<T> result) const {
    if (result.ok()) return result;
    return Locate(pos, result.status());
  }

  absl::Status Step(size_t pos) {
    if (++steps_ > options_.limits.max_steps) {
      return absl::ResourceExhaustedError(absl::StrCat("template ran more than ",
                                                       options_.limits.max_steps, " steps",
                                                       LocationSuffix(program_.source, pos)));
    }
    return absl::OkStatus();
  }

  absl::Status Emit(size_t pos, absl::string_view text, std::string* out) {
    written_ += text.size();
    if (written_ > options_.limits.max_output_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("template output exceeds ",
                                                       options_.limits.max_output_bytes, " bytes",
                                                       LocationSuffix(program_.source, pos)));
    }
    absl::StrAppend(out, text);
    return absl::OkStatus();
  }

  Value Lookup(const std::string& name) const {
    for (size_t i = frames_.size() - 1; i > 0; --i) {
      const Frame& frame = frames_[i];
      if (auto it = frame.vars.find(name); it != frame.vars.end()) return it->second;
      if (frame.closure) {
        if (auto it = frame.closure->find(name); it != frame.closure->end()) return it->second;
      }
      if (frame.isolated) break;
    }
    if (auto it = frames_[0].vars.find(name); it != frames_[0].vars.end()) return it->second;
    if (const Value* value = context_.dict().Find(name)) return *value;
    if (auto it = builtins_.find(name); it != builtins_.end()) return it->second;
    return Value::Undefined(name);
  }

  // The locals visible here, for a macro or caller defined here.
  std::shared_ptr<const Variables> Snapshot() const {
    auto vars = std::make_shared<Variables>();
    for (size_t i = frames_.size() - 1; i > 0; --i) {
      const Frame& frame = frames_[i];
      for (const auto& [name, value] : frame.vars) vars->try_emplace(name, value);
      if (frame.closure) {
        for (const auto& [name, value] : *frame.closure) vars->try_emplace(name, value);
      }
      if (frame.isolated) break;
    }
    return vars;
  }

  absl::Status ExecBody(const Body& body, std::string* out) {
    for (const auto& node : body) {
      SEMSHARE_RETURN_IF_ERROR(Exec(*node, out));
      if (control_ != Control::kNone) return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  absl::Status Exec(const Node& node, std::string* out) {
    SEMSHARE_RETURN_IF_ERROR(Step(node.pos));
    switch (node.kind) {
      case NodeKind::kText:
        return Emit(node.pos, node.text, out);
      case NodeKind::kOutput: {
        SEMSHARE_ASSIGN_OR_RETURN(Value value, Eval(*node.expr));
        return Emit(node.pos, ToPythonString(value), out);
      }
      case NodeKind::kIf:
        for (size_t i = 0; i < node.conditions.size(); ++i) {
          SEMSHARE_ASSIGN_OR_RETURN(Value condition, Eval(*node.conditions[i]));
          if (condition.Truthy()) return ExecBody(node.bodies[i], out);
        }
        return ExecBody(node.else_body, out);
      case NodeKind::kFor:
        return ExecFor(node, out);
      case NodeKind::kSet:
        return ExecSet(node);
      case NodeKind::kMacro: {
        auto callable = std::make_shared<Callable>();
        callable->name = node.text;
        callable->macro = &node;
        callable->closure = Snapshot();
        frames_.back().vars[node.text] = Value::Function(std::move(callable));
        return absl::OkStatus();
      }
      case NodeKind::kCallBlock: {
        auto caller = std::make_shared<Callable>();
        caller->name = "caller";
        caller->macro = &node;
        caller->closure = Snapshot();
        const Expr& call = *node.expr;
        SEMSHARE_ASSIGN_OR_RETURN(Value callee, Eval(*call.args[0]));
        SEMSHARE_ASSIGN_OR_RETURN(Args args, EvalArgs(call));
        SEMSHARE_ASSIGN_OR_RETURN(Value result, CallValue(call.pos, callee, std::move(args),
                                                          Value::Function(std::move(caller))));
        return Emit(node.pos, ToPythonString(result), out);
      }
      case NodeKind::kFilterBlock: {
        std::string body;
        SEMSHARE_RETURN_IF_ERROR(ExecBody(node.body, &body));
        frames_.emplace_back();
        frames_.back().vars[kFilterBodyName] = Value(std::move(body));
        absl::StatusOr<Value> value = Eval(*node.expr);
        frames_.pop_back();
        if (!value.ok()) return value.status();
        return Emit(node.pos, ToPythonString(*value), out);
      }
      case NodeKind::kBreak:
      case NodeKind::kContinue:
        if (loop_depth_ == 0) return Error(node.pos, "break or continue outside a for loop");
        control_ = node.kind == NodeKind::kBreak ? Control::kBreak : Control::kContinue;
        return absl::OkStatus();
    }
    return absl::InternalError("unknown node");
  }

  absl::Status Bind(size_t pos, const std::vector<std::string>& targets, const Value& item,
                    Variables* vars) const {
    if (targets.size() == 1) {
      (*vars)[targets[0]] = item;
      return absl::OkStatus();
    }
    if (!item.is_list() || item.list().size() != targets.size()) {
      return Error(pos, absl::StrCat("cannot unpack '", TypeName(item), "' into ", targets.size(),
                                     " names"));
    }
    for (size_t i = 0; i < targets.size(); ++i) (*vars)[targets[i]] = item.list()[i];
    return absl::OkStatus();
  }

  absl::Status ExecFor(const Node& node, std::string* out) {
    SEMSHARE_ASSIGN_OR_RETURN(Value iterable, Eval(*node.expr));
    absl::StatusOr<ValueList> all = IterableItems(iterable);
    if (!all.ok()) return Locate(node.expr->pos, all.status());
    ValueList items;
    if (node.filter) {
      items.reserve(all->size());
      for (Value& item : *all) {
        SEMSHARE_RETURN_IF_ERROR(Step(node.pos));
        frames_.emplace_back();
        absl::Status bound = Bind(node.pos, node.targets, item, &frames_.back().vars);
        absl::StatusOr<Value> keep = bound.ok() ? Eval(*node.filter) : bound;
        frames_.pop_back();
        if (!keep.ok()) return keep.status();
        if (keep->Truthy()) items.push_back(std::move(item));
      }
    } else {
      items = std::move(*all);
    }
    if (items.empty()) return ExecBody(node.else_body, out);
    const auto length = static_cast<int64_t>(items.size());
    ++loop_depth_;
    absl::Status status;
    for (int64_t i = 0; i < length; ++i) {
      status = Step(node.pos);
      if (!status.ok()) break;
      frames_.emplace_back();
      Variables& vars = frames_.back().vars;
      status = Bind(node.pos, node.targets, items[i], &vars);
      if (!status.ok()) {
        frames_.pop_back();
        break;
      }
      ValueDict loop;
      loop.Set("index", Value(i + 1));
      loop.Set("index0", Value(i));
      loop.Set("revindex", Value(length - i));
      loop.Set("revindex0", Value(length - i - 1));
      loop.Set("first", Value(i == 0));
      loop.Set("last", Value(i == length - 1));
      loop.Set("length", Value(length));
      loop.Set("depth", Value(1));
      loop.Set("depth0", Value(0));
      loop.Set("previtem", i > 0 ? items[i - 1] : Value::Undefined("previtem"));
      loop.Set("nextitem", i + 1 < length ? items[i + 1] : Value::Undefined("nextitem"));
      vars["loop"] = Value(std::move(loop));
      status = ExecBody(node.body, out);
      frames_.pop_back();
      if (!status.ok()) break;
      const Control control = control_;
      control_ = Control::kNone;
      if (control == Control::kBreak) break;
    }
    --loop_depth_;
    return status;
  }

  absl::Status ExecSet(const Node& node) {
    Value value;
    if (node.expr) {
      SEMSHARE_ASSIGN_OR_RETURN(value, Eval(*node.expr));
    } else {
      std::string body;
      SEMSHARE_RETURN_IF_ERROR(ExecBody(node.body, &body));
      value = Value(std::move(body));
    }
    if (!node.text.empty()) {
      const Value target = Lookup(node.targets[0]);
      ValueDict* attributes = target.mutable_namespace();
      if (attributes == nullptr) {
        return Error(node.pos, absl::StrCat("cannot assign attribute on '", node.targets[0],
                                            "', which is not a namespace()"));
      }
      attributes->Set(node.text, std::move(value));
      return absl::OkStatus();
    }
    return Bind(node.pos, node.targets, value, &frames_.back().vars);
  }

  absl::StatusOr<Args> EvalArgs(const Expr& expr, size_t first = 1) {
    Args args;
    args.positional.reserve(expr.args.size());
    for (size_t i = first; i < expr.args.size(); ++i) {
      SEMSHARE_ASSIGN_OR_RETURN(Value value, Eval(*expr.args[i]));
      args.positional.push_back(std::move(value));
    }
    args.keyword.reserve(expr.kwargs.size());
    for (const auto& [name, value_expr] : expr.kwargs) {
      SEMSHARE_ASSIGN_OR_RETURN(Value value, Eval(*value_expr));
      args.keyword.emplace_back(name, std::move(value));
    }
    return args;
  }

  absl::StatusOr<Value> CallMacro(size_t pos, const Callable& callable, Args args, Value caller) {
    if (call_depth_ >= options_.limits.max_call_depth) {
      return absl::ResourceExhaustedError(absl::StrCat("macro calls nest deeper than ",
                                                       options_.limits.max_call_depth,
                                                       LocationSuffix(program_.source, pos)));
    }
    const Node& macro = *callable.macro;
    const std::vector<Param>& params = macro.params;
    if (args.positional.size() > params.size()) {
      return Error(pos, absl::StrCat("macro '", callable.name, "' takes at most ", params.size(),
                                     " arguments, got ", args.positional.size()));
    }
    Frame frame;
    frame.isolated = true;
    frame.closure = callable.closure;
    for (const auto& keyword : args.keyword) {
      const std::string& name = keyword.first;
      const bool known =
          std::any_of(params.begin(), params.end(), [&](const Param& p) { return p.name == name; });
      if (!known) {
        return Error(pos, absl::StrCat("macro '", callable.name, "' has no argument '", name, "'"));
      }
    }
    if (!callable.caller.is_undefined()) frame.vars["caller"] = callable.caller;
    if (!caller.is_undefined()) frame.vars["caller"] = std::move(caller);
    frames_.push_back(std::move(frame));
    ++call_depth_;
    absl::Status status;
    for (size_t i = 0; i < params.size() && status.ok(); ++i) {
      const Value* given = i < args.positional.size() ? &args.positional[i] : nullptr;
      for (const auto& [name, value] : args.keyword) {
        if (name == params[i].name) given = &value;
      }
      if (given != nullptr) {
        frames_.back().vars[params[i].name] = *given;
      } else if (params[i].default_value) {
        absl::StatusOr<Value> fallback = Eval(*params[i].default_value);
        if (fallback.ok()) {
          frames_.back().vars[params[i].name] = std::move(*fallback);
        } else {
          status = fallback.status();
        }
      } else {
        frames_.back().vars[params[i].name] = Value::Undefined(params[i].name);
      }
    }
    std::string out;
    const int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    if (status.ok()) status = ExecBody(macro.body, &out);
    loop_depth_ = saved_loop_depth;
    control_ = Control::kNone;
    --call_depth_;
    frames_.pop_back();
    if (!status.ok()) return status;
    return Value(std::move(out));
  }

  absl::StatusOr<Value> CallBuiltin(size_t pos, const std::string& name, const Args& args) {
    if (name == "raise_exception") {
      const Value* message = args.Get(0, "message");
      absl::Status status =
          Error(pos, message != nullptr ? ToPythonString(*message) : "raise_exception called");
      status.SetPayload(kRaisedPayload, absl::Cord("1"));
      return status;
    }
    if (name == "range") {
      for (const Value& arg : args.positional) {
        if (!arg.is_int() && !arg.is_bool()) {
          return Error(pos, absl::StrCat("range: '", TypeName(arg),
                                         "' object cannot be interpreted as an integer"));
        }
      }
      int64_t start = 0;
      int64_t stop = 0;
      int64_t step = 1;
      if (args.positional.size() == 1) {
        stop = args.positional[0].int_value();
      } else if (args.positional.size() == 2 || args.positional.size() == 3) {
        start = args.positional[0].int_value();
        stop = args.positional[1].int_value();
        if (args.positional.size() == 3) step = args.positional[2].int_value();
      } else {
        return Error(pos, "range: expects 1 to 3 integer arguments");
      }
      if (step == 0) return Error(pos, "range: step must not be zero");
      ValueList out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        SEMSHARE_RETURN_IF_ERROR(Step(pos));
        out.emplace_back(i);
      }
      return Value(std::move(out));
    }
    if (name == "namespace" || name == "dict") {
      ValueDict attributes;
      for (const Value& arg : args.positional) {
        if (!arg.is_dict()) return Error(pos, absl::StrCat(name, ": expects keyword arguments"));
        for (const ValueDict::Item& item : arg.dict().items())
          attributes.Set(item.first, item.second);
      }
      for (const auto& [key, value] : args.keyword) attributes.Set(key, value);
      return name == "dict" ? Value(std::move(attributes))
                            : Value::Namespace(std::move(attributes));
    }
    if (name == "strftime_now") {
      const Value* format = args.Get(0, "format");
      if (format == nullptr || !format->is_string()) {
        return Error(pos, "strftime_now: expects a format string");
      }
      const absl::Time now = options_.now == absl::InfinitePast() ? absl::Now() : options_.now;
      return Value(absl::FormatTime(format->string_value(), now, options_.time_zone));
    }
    return Error(pos, absl::StrCat("unknown function '", name, "'"));
  }

  absl::StatusOr<Value> CallValue(size_t pos, const Value& callee, Args args,
                                  Value caller = Value()) {
    SEMSHARE_RETURN_IF_ERROR(Step(pos));
    if (!callee.is_callable()) {
      if (callee.is_undefined()) {
        return Error(pos, absl::StrCat("'", callee.string_value(), "' is undefined"));
      }
      return Error(pos, absl::StrCat("'", TypeName(callee), "' object is not callable"));
    }
    const Callable& callable = *callee.callable();
    if (callable.macro != nullptr)
      return CallMacro(pos, callable, std::move(args), std::move(caller));
    return CallBuiltin(pos, callable.name, args);
  }

  absl::StatusOr<Value> EvalCall(const Expr& expr) {
    const Expr& callee = *expr.args[0];
    if (callee.kind == ExprKind::kGetAttr) {
      SEMSHARE_ASSIGN_OR_RETURN(Value object, Eval(*callee.args[0]));
      if (object.is_undefined()) {
        return Error(callee.pos, absl::StrCat("'", object.string_value(), "' is undefined"));
      }
      SEMSHARE_ASSIGN_OR_RETURN(Args args, EvalArgs(expr));
      if (object.is_dict() || object.is_namespace()) {
        const Value* member = object.dict().Find(callee.name);
        if (member != nullptr && member->is_callable()) {
          return CallValue(expr.pos, *member, std::move(args));
        }
      }
      SEMSHARE_RETURN_IF_ERROR(Step(expr.pos));
      return Locate(expr.pos, CallMethod(object, callee.name, args));
    }
    SEMSHARE_ASSIGN_OR_RETURN(Value function, Eval(callee));
    SEMSHARE_ASSIGN_OR_RETURN(Args args, EvalArgs(expr));
    return CallValue(expr.pos, function, std::move(args));
  }

  absl::StatusOr<Value> GetItem(size_t pos, const Value& object, const Value& key) const {
    if (object.is_undefined()) {
      return Error(pos, absl::StrCat("'", object.string_value(), "' is undefined"));
    }
    if (object.is_dict() || object.is_namespace()) {
      if (key.is_string()) {
        if (const Value* found = object.dict().Find(key.string_value())) return *found;
        return Value::Undefined(key.string_value());
      }
      return Value::Undefined(ToPythonString(key));
    }
    if ((object.is_list() || object.is_string()) && (key.is_int() || key.is_bool())) {
      int64_t index = key.int_value();
      if (object.is_list()) {
        const auto size = static_cast<int64_t>(object.list().size());
        if (index < 0) index += size;
        if (index < 0 || index >= size) return Value::Undefined(absl::StrCat(key.int_value()));
        return object.list()[index];
      }
      std::vector<std::string> chars = SplitCharacters(object.string_value());
      const auto size = static_cast<int64_t>(chars.size());
      if (index < 0) index += size;
      if (index < 0 || index >= size) return Value::Undefined(absl::StrCat(key.int_value()));
      return Value(std::move(chars[index]));
    }
    return Value::Undefined(ToPythonString(key));
  }

  absl::StatusOr<Value> EvalSlice(const Expr& expr) {
    SEMSHARE_ASSIGN_OR_RETURN(Value object, Eval(*expr.args[0]));
    int64_t bounds[3] = {0, 0, 1};
    bool given[3] = {false, false, false};
    for (int i = 0; i < 3; ++i) {
      if (!expr.args[i + 1]) continue;
      SEMSHARE_ASSIGN_OR_RETURN(Value bound, Eval(*expr.args[i + 1]));
      if (bound.is_none()) continue;
      if (!bound.is_int() && !bound.is_bool()) {
        return Error(expr.pos, "slice indices must be integers or none");
      }
      bounds[i] = bound.int_value();
      given[i] = true;
    }
    const int64_t step = given[2] ? bounds[2] : 1;
    if (step == 0) return Error(expr.pos, "slice step cannot be zero");
    std::vector<std::string> chars;
    int64_t size = 0;
    if (object.is_string()) {
      chars = SplitCharacters(object.string_value());
      size = static_cast<int64_t>(chars.size());
    } else if (object.is_list()) {
      size = static_cast<int64_t>(object.list().size());
    } else if (object.is_undefined()) {
      return Error(expr.pos, absl::StrCat("'", object.string_value(), "' is undefined"));
    } else {
      return Error(expr.pos, absl::StrCat("'", TypeName(object), "' object is not subscriptable"));
    }
    // Python's slice.indices().
    const auto clamp = [&](int64_t value, bool present, int64_t fallback) {
      if (!present) return fallback;
      if (value < 0) value += size;
      if (step > 0) return std::clamp<int64_t>(value, 0, size);
      return std::clamp<int64_t>(value, -1, size - 1);
    };
    const int64_t start = clamp(bounds[0], given[0], step > 0 ? 0 : size - 1);
    const int64_t stop = clamp(bounds[1], given[1], step > 0 ? size : -1);
    std::string text;
    ValueList items;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (object.is_string()) {
        text += chars[i];
      } else {
        items.push_back(object.list()[i]);
      }
    }
    if (object.is_string()) return Value(std::move(text));
    return Value(std::move(items));
  }

  absl::Status Undefined(size_t pos, const Value& value) const {
    return Error(pos, absl::StrCat("'", value.string_value(), "' is undefined"));
  }

  absl::StatusOr<Value> Arithmetic(const Expr& expr, const Value& a, const Value& b) {
    const std::string& op = expr.name;
    if (op == "~") {
      std::string joined = ToPythonString(a) + ToPythonString(b);
      if (joined.size() > options_.limits.max_output_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "string exceeds the output limit", LocationSuffix(program_.source, expr.pos)));
      }
      return Value(std::move(joined));
    }
    if (a.is_undefined()) return Undefined(expr.args[0]->pos, a);
    if (b.is_undefined()) return Undefined(expr.args[1]->pos, b);
    const auto unsupported = [&]() {
      return Error(expr.pos, absl::StrCat("unsupported operand type(s) for ", op, ": '",
                                          TypeName(a), "' and '", TypeName(b), "'"));
    };
    if (op == "+") {
      if (a.is_string() && b.is_string()) {
        if (a.string_value().size() + b.string_value().size() > options_.limits.max_output_bytes) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "string exceeds the output limit", LocationSuffix(program_.source, expr.pos)));
        }
        return Value(a.string_value() + b.string_value());
      }
      if (a.is_list() && b.is_list()) {
        ValueList joined = a.list();
        joined.insert(joined.end(), b.list().begin(), b.list().end());
        return Value(std::move(joined));
      }
      if (a.is_string() || b.is_string()) {
        return Error(expr.pos, absl::StrCat("can only concatenate str (not \"",
                                            TypeName(a.is_string() ? b : a), "\") to str"));
      }
    }
    if (op == "*" && (a.is_string() || a.is_list() || b.is_string() || b.is_list())) {
      const Value& sequence = a.is_string() || a.is_list() ? a : b;
      const Value& count = &sequence == &a ? b : a;
      if (!count.is_int() && !count.is_bool()) return unsupported();
      const int64_t times = std::max<int64_t>(0, count.int_value());
      const size_t unit =
          sequence.is_string() ? sequence.string_value().size() : sequence.list().size();
      if (unit > 0 && static_cast<uint64_t>(times) > options_.limits.max_output_bytes / unit) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "repetition exceeds the output limit", LocationSuffix(program_.source, expr.pos)));
      }
      if (sequence.is_string()) {
        std::string out;
        out.reserve(unit * times);
        for (int64_t i = 0; i < times; ++i) out += sequence.string_value();
        return Value(std::move(out));
      }
      ValueList out;
      out.reserve(unit * times);
      for (int64_t i = 0; i < times; ++i) {
        out.insert(out.end(), sequence.list().begin(), sequence.list().end());
      }
      return Value(std::move(out));
    }
    if (!a.is_number() || !b.is_number()) return unsupported();
    const bool floats = a.is_float() || b.is_float();
    if (op == "/") {
      if (b.float_value() == 0) return Error(expr.pos, "division by zero");
      return Value(a.float_value() / b.float_value());
    }
    if (op == "//" || op == "%") {
      if (floats ? b.float_value() == 0 : b.int_value() == 0) {
        return Error(expr.pos, op == "//" ? "integer division by zero" : "modulo by zero");
      }
      if (floats) {
        const double x = a.float_value();
        const double y = b.float_value();
        const double floored = std::floor(x / y);
        return op == "//" ? Value(floored) : Value(x - floored * y);
      }
      const int64_t x = a.int_value();
      const int64_t y = b.int_value();
      if (x == std::numeric_limits<int64_t>::min() && y == -1) return unsupported();
      int64_t quotient = x / y;
      int64_t remainder = x % y;
      if (remainder != 0 && ((remainder < 0) != (y < 0))) {
        --quotient;
        remainder += y;
      }
      return op == "//" ? Value(quotient) : Value(remainder);
    }
    if (op == "**") {
      if (!floats && b.int_value() >= 0) {
        int64_t result = 1;
        for (int64_t i = 0; i < b.int_value(); ++i) {
          if (__builtin_mul_overflow(result, a.int_value(), &result)) {
            return Error(expr.pos, "integer overflow in **");
          }
          if (result == 0 || result == 1) break;
        }
        return Value(result);
      }
      return Value(std::pow(a.float_value(), b.float_value()));
    }
    if (floats) {
      const double x = a.float_value();
      const double y = b.float_value();
      if (op == "+") return Value(x + y);
      if (op == "-") return Value(x - y);
      if (op == "*") return Value(x * y);
      return unsupported();
    }
    int64_t result = 0;
    bool overflow = false;
    if (op == "+") {
      overflow = __builtin_add_overflow(a.int_value(), b.int_value(), &result);
    } else if (op == "-") {
      overflow = __builtin_sub_overflow(a.int_value(), b.int_value(), &result);
    } else if (op == "*") {
      overflow = __builtin_mul_overflow(a.int_value(), b.int_value(), &result);
    } else {
      return unsupported();
    }
    if (overflow) return Error(expr.pos, absl::StrCat("integer overflow in ", op));
    return Value(result);
  }

  absl::StatusOr<Value> Eval(const Expr& expr) {
    switch (expr.kind) {
      case ExprKind::kLiteral:
        return expr.literal;
      case ExprKind::kName:
        return Lookup(expr.name);
      case ExprKind::kList:
      case ExprKind::kTuple: {
        ValueList items;
        items.reserve(expr.args.size());
        for (const auto& item : expr.args) {
          SEMSHARE_ASSIGN_OR_RETURN(Value value, Eval(*item));
          items.push_back(std::move(value));
        }
        return Value(std::move(items));
      }
      case ExprKind::kDict: {
        ValueDict dict;
        for (size_t i = 0; i + 1 < expr.args.size(); i += 2) {
          SEMSHARE_ASSIGN_OR_RETURN(Value key, Eval(*expr.args[i]));
          if (!key.is_string()) {
            return Error(expr.args[i]->pos, "dict keys must be strings in this engine");
          }
          SEMSHARE_ASSIGN_OR_RETURN(Value value, Eval(*expr.args[i + 1]));
          dict.Set(key.string_value(), std::move(value));
        }
        return Value(std::move(dict));
      }
      case ExprKind::kGetAttr: {
        SEMSHARE_ASSIGN_OR_RETURN(Value object, Eval(*expr.args[0]));
        if (object.is_undefined()) return Undefined(expr.args[0]->pos, object);
        if (object.is_dict() || object.is_namespace()) {
          if (const Value* found = object.dict().Find(expr.name)) return *found;
        }
        return Value::Undefined(expr.name);
      }
      case ExprKind::kGetItem: {
        SEMSHARE_ASSIGN_OR_RETURN(Value object, Eval(*expr.args[0]));
        SEMSHARE_ASSIGN_OR_RETURN(Value key, Eval(*expr.args[1]));
        return GetItem(expr.pos, object, key);
      }
      case ExprKind::kSlice:
        return EvalSlice(expr);
      case ExprKind::kCall:
        return EvalCall(expr);
      case ExprKind::kFilter: {
        SEMSHARE_ASSIGN_OR_RETURN(Value value, Eval(*expr.args[0]));
        SEMSHARE_ASSIGN_OR_RETURN(Args args, EvalArgs(expr));
        SEMSHARE_RETURN_IF_ERROR(Step(expr.pos));
        return Locate(expr.pos, ApplyFilter(expr.name, value, args));
      }
      case ExprKind::kTest: {
        SEMSHARE_ASSIGN_OR_RETURN(Value value, Eval(*expr.args[0]));
        SEMSHARE_ASSIGN_OR_RETURN(Args args, EvalArgs(expr));
        absl::StatusOr<bool> passed = ApplyTest(expr.name, value, args);
        if (!passed.ok()) return Locate(expr.pos, passed.status());
        return Value(*passed != expr.negated);
      }
      case ExprKind::kUnary: {
        SEMSHARE_ASSIGN_OR_RETURN(Value value, Eval(*expr.args[0]));
        if (expr.name == "not") return Value(!value.Truthy());
        if (value.is_undefined()) return Undefined(expr.args[0]->pos, value);
        if (!value.is_number()) {
          return Error(expr.pos, absl::StrCat("bad operand type for unary ", expr.name, ": '",
                                              TypeName(value), "'"));
        }
        if (expr.name == "+") return value.is_float() ? value : Value(value.int_value());
        if (value.is_float()) return Value(-value.float_value());
        return Value(-value.int_value());
      }
      case ExprKind::kBinary: {
        SEMSHARE_ASSIGN_OR_RETURN(Value left, Eval(*expr.args[0]));
        if (expr.name == "and") return left.Truthy() ? Eval(*expr.args[1]) : left;
        if (expr.name == "or") return left.Truthy() ? left : Eval(*expr.args[1]);
        SEMSHARE_ASSIGN_OR_RETURN(Value right, Eval(*expr.args[1]));
        return Arithmetic(expr, left, right);
      }
      case ExprKind::kCompare: {
        SEMSHARE_ASSIGN_OR_RETURN(Value left, Eval(*expr.args[0]));
        for (size_t i = 0; i < expr.ops.size(); ++i) {
          SEMSHARE_ASSIGN_OR_RETURN(Value right, Eval(*expr.args[i + 1]));
          const std::string& op = expr.ops[i];
          bool result = false;
          if (op == "==" || op == "!=") {
            result = ValuesEqual(left, right) == (op == "==");
          } else if (op == "in" || op == "notin") {
            absl::StatusOr<bool> contained = Contains(right, left);
            if (!contained.ok()) return Locate(expr.pos, contained.status());
            result = *contained == (op == "in");
          } else {
            absl::StatusOr<int> order = CompareValues(left, right, op);
            if (!order.ok()) return Locate(expr.pos, order.status());
            result = op == "<"    ? *order < 0
                     : op == ">"  ? *order > 0
                     : op == "<=" ? *order <= 0
                                  : *order >= 0;
          }
          if (!result) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case ExprKind::kCondition: {
        SEMSHARE_ASSIGN_OR_RETURN(Value condition, Eval(*expr.args[1]));
        if (condition.Truthy()) return Eval(*expr.args[0]);
        if (expr.args[2]) return Eval(*expr.args[2]);
        return Value::Undefined("");
      }
    }
    return absl::InternalError("unknown expression");
  }

  const Program& program_;
  const Value& context_;
  const RenderOptions& options_;
  Variables builtins_;
  std::vector<Frame> frames_;
  Control control_ = Control::kNone;
  int loop_depth_ = 0;
  int call_depth_ = 0;
  int64_t steps_ = 0;
  size_t written_ = 0;
};

}  // namespace

absl::StatusOr<Template> Template::Parse(absl::string_view source, const ParseOptions& options) {
  LexOptions lex;
  lex.trim_blocks = options.trim_blocks;
  lex.lstrip_blocks = options.lstrip_blocks;
  SEMSHARE_ASSIGN_OR_RETURN(std::unique_ptr<Program> program,
                            ParseProgram(NormalizeSource(source), lex));
  return Template(std::shared_ptr<const Program>(std::move(program)));
}

absl::StatusOr<std::string> Template::Render(const Value& context,
                                             const RenderOptions& options) const {
  if (!context.is_dict() && !context.is_undefined()) {
    return absl::InvalidArgumentError("the render context must be a dict");
  }
  return Renderer(*program_, context, options).Run();
}

bool IsRaisedByTemplate(const absl::Status& status) {
  return status.GetPayload(kRaisedPayload).has_value();
}

}  // namespace semshare::jinja
