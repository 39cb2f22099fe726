// Per-feature tests of the Jinja engine. The expected strings are what jinja2 3.1 renders with
// transformers' settings (trim_blocks, lstrip_blocks), checked with Debian's python3-jinja2.
#include "common/jinja/template.h"

#include <string>

#include "absl/time/civil_time.h"
#include "common/jinja/json_value.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace semshare::jinja {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<std::string> Render(const std::string& source, const char* context_json = "{}",
                                   const RenderOptions& options = {}) {
  absl::StatusOr<Template> tmpl = Template::Parse(source);
  if (!tmpl.ok()) return tmpl.status();
  return tmpl->Render(ValueFromJson(nlohmann::ordered_json::parse(context_json)), options);
}

std::string Ok(const std::string& source, const char* context_json = "{}") {
  absl::StatusOr<std::string> out = Render(source, context_json);
  EXPECT_TRUE(out.ok()) << source << ": " << out.status();
  return out.ok() ? *out : "<error>";
}

std::string ErrorOf(const std::string& source, const char* context_json = "{}") {
  absl::StatusOr<std::string> out = Render(source, context_json);
  EXPECT_FALSE(out.ok()) << source << " rendered " << *out;
  return out.ok() ? "" : std::string(out.status().message());
}

TEST(JinjaTest, TextOutputAndComments) {
  EXPECT_EQ(Ok("Hello {{ name }}!{# a comment #}", R"({"name": "you"})"), "Hello you!");
  EXPECT_EQ(Ok("{{ 'a' 'b' }}{{ \"\\n\" }}"), "ab\n");
  EXPECT_EQ(Ok("{% raw %}{{ not parsed }}{% endraw %}"), "{{ not parsed }}");
}

TEST(JinjaTest, WhitespaceControlAndTransformersTrimming) {
  EXPECT_EQ(Ok("a  {{- 'b' -}}  c"), "abc");
  EXPECT_EQ(Ok("a\n  {%- if true %}b{% endif -%}\n  c"), "abc");
  // trim_blocks drops the newline after a block tag; lstrip_blocks the indent before it.
  EXPECT_EQ(Ok("  {% if true %}\n  hi\n  {% endif %}\n  end\n"), "  hi\n  end");
  // Not after {{ }}, and `+` keeps the indent.
  EXPECT_EQ(Ok("{{ 'x' }}\ny"), "x\ny");
  EXPECT_EQ(Ok("  {%+ if true %}x{% endif %}"), "  x");
  EXPECT_EQ(Ok("a {# c #}\nb"), "a b");
  // One trailing newline of the source is dropped, as jinja2 does.
  EXPECT_EQ(Ok("x\n"), "x");
}

TEST(JinjaTest, ForLoopsAndLoopVariables) {
  EXPECT_EQ(Ok("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ x }}"
               "{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %}"
               "{{ loop.length }},{% endfor %}",
               R"({"xs": ["a", "b"]})"),
            "10aF2,21bL2,");
  EXPECT_EQ(Ok("{% for a in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(Ok("{% for k, v in d.items() if k != 'skip' %}{{ k }}={{ v }}"
               "{{ ';' if not loop.last }}{% endfor %}",
               R"({"d": {"b": 1, "skip": 0, "a": 2}})"),
            "b=1;a=2");
  EXPECT_EQ(Ok("{% for c in 'h\xc3\xa9' %}[{{ c }}]{% endfor %}"), "[h][\xc3\xa9]");
  EXPECT_EQ(Ok("{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}"
               "{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
            "02");
  EXPECT_EQ(Ok("{% for x in d %}{{ x }}{% endfor %}", R"({"d": {"k1": 1, "k2": 2}})"), "k1k2");
}

TEST(JinjaTest, ScopingFollowsJinja2) {
  // A set inside a loop body lives for that iteration only; namespace() carries state out.
  EXPECT_EQ(Ok("{% for i in [1,2] %}{% if i == 1 %}{% set x = 5 %}{% endif %}[{{ x }}]"
               "{% endfor %}"),
            "[5][]");
  EXPECT_EQ(Ok("{% set x = 1 %}{% for i in [1,2] %}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}"),
            "221");
  EXPECT_EQ(Ok("{% set ns = namespace(n=0, found=false) %}{% for i in [1,2,3] %}"
               "{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }} {{ ns.found }}"),
            "6 False");
  EXPECT_EQ(Ok("{% if true %}{% set y = 3 %}{% endif %}{{ y }}"), "3");
  EXPECT_EQ(Ok("{% set a, b = [1, 2] %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(Ok("{% set s %}a{{ 1 }}b{% endset %}[{{ s }}]"), "[a1b]");
}

TEST(JinjaTest, IfElifElseAndConditionalExpressions) {
  const char* tmpl = "{% if n > 1 %}big{% elif n == 1 %}one{% else %}none{% endif %}";
  EXPECT_EQ(Ok(tmpl, R"({"n": 2})"), "big");
  EXPECT_EQ(Ok(tmpl, R"({"n": 1})"), "one");
  EXPECT_EQ(Ok(tmpl, R"({"n": 0})"), "none");
  EXPECT_EQ(Ok("{{ 'a' if true else 'b' }}{{ 'c' if false }}|"), "a|");
}

TEST(JinjaTest, MacrosAndCallBlocks) {
  EXPECT_EQ(Ok("{% macro m(a, b='x') %}<{{ a }}{{ b }}{{ g }}>{% endmacro %}{% set g = 'G' %}"
               "{{ m(1) }}{{ m(2, b='y') }}"),
            "<1xG><2yG>");
  EXPECT_EQ(Ok("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}"
               "{% for x in ['a'] %}{% call wrap('b') %}{{ x }}!{% endcall %}{% endfor %}"),
            "<b>a!</b>");
  EXPECT_THAT(ErrorOf("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"), HasSubstr("at most 1"));
}

TEST(JinjaTest, ValuesPrintAsPythonPrintsThem) {
  EXPECT_EQ(Ok("{{ [1, 'a', none, true, 1.5, {'k': 'v'}] }}"),
            "[1, 'a', None, True, 1.5, {'k': 'v'}]");
  EXPECT_EQ(Ok("{{ 1e20 }} {{ 1e-5 }} {{ 3.0 }} {{ 0.1 + 0.2 }} {{ (1, 2) }}"),
            "1e+20 1e-05 3.0 0.30000000000000004 [1, 2]");
  EXPECT_EQ(Ok("{{ [\"it's\"] }} {{ ['a\"b'] }} {{ ['\\n'] }}"), "[\"it's\"] ['a\"b'] ['\\n']");
  EXPECT_EQ(Ok("{{ missing }}|{{ d.nokey }}|{{ xs[5] }}", R"({"d": {}, "xs": [1]})"), "||");
}

TEST(JinjaTest, Operators) {
  EXPECT_EQ(Ok("{{ 7 + 2 }} {{ 7 - 2 }} {{ 7 * 2 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 % 3 }} "
               "{{ 2 ** 10 }} {{ 'a' ~ 1 ~ none }}"),
            "9 5 14 3.5 3 2 1024 a1None");
  EXPECT_EQ(Ok("{{ 'ab' + 'c' }} {{ [1] + [2] }} {{ '=' * 3 }} {{ -(1) }}"), "abc [1, 2] === -1");
  EXPECT_EQ(Ok("{{ 1 == 1.0 }} {{ [1, 2] == [1, 2] }} {{ 'a' != 'b' }} {{ 1 < 2 <= 2 }} "
               "{{ 'abc' < 'abd' }}"),
            "True True True True True");
  EXPECT_EQ(Ok("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }}"),
            "True True True True");
  EXPECT_EQ(Ok("{{ true and 'x' }} {{ false or 'y' }} {{ not 0 }} {{ not x in [1] }}"),
            "x y True True");
  EXPECT_THAT(ErrorOf("{{ 'a' + 1 }}"), HasSubstr("can only concatenate str"));
  EXPECT_THAT(ErrorOf("{{ 1 / 0 }}"), HasSubstr("division by zero"));
  EXPECT_THAT(ErrorOf("{{ 1 < 'a' }}"), HasSubstr("not supported between"));
}

TEST(JinjaTest, Tests) {
  EXPECT_EQ(Ok("{{ x is defined }}{{ y is undefined }}{{ n is none }}{{ 's' is string }}"
               "{{ 1 is number }}{{ d is mapping }}{{ [] is sequence }}{{ 's' is iterable }}",
               R"({"x": 1, "n": null, "d": {}})"),
            "TrueTrueTrueTrueTrueTrueTrueTrue");
  EXPECT_EQ(Ok("{{ true is true }}{{ false is false }}{{ 2 is even }}{{ 3 is odd }}"
               "{{ 1 is not string }}{{ 3 is divisibleby(3) }}{{ 'a' is equalto 'a' }}"),
            "TrueTrueTrueTrueTrueTrueTrue");
  EXPECT_EQ(Ok("{{ 1 is true }}{{ 1 is mapping }}{{ 's' is number }}"), "FalseFalseFalse");
}

TEST(JinjaTest, Filters) {
  EXPECT_EQ(Ok("{{ '  x  '|trim }}|{{ [1,2]|length }}|{{ 'h\xc3\xa9'|count }}|{{ d|length }}",
               R"({"d": {"a": 1}})"),
            "x|2|2|1");
  EXPECT_EQ(Ok("{{ 'aB'|upper }}{{ 'aB'|lower }}{{ 'hELLO'|capitalize }}{{ 'a b-c'|title }}"),
            "ABabHelloA B-C");
  EXPECT_EQ(Ok("{{ [3,4]|first }}{{ [3,4]|last }}{{ [1,2]|join(', ') }}{{ 'abc'|reverse }}"
               "{{ [1,2]|reverse|list }}"),
            "341, 2cba[2, 1]");
  EXPECT_EQ(Ok("{{ x|default('d') }}{{ ''|d('e', true) }}{{ 'aXa'|replace('a', 'b') }}"
               "{{ 5|string }}{{ '42'|int + 1 }}{{ 'x'|int }}{{ 3.7|int }}{{ 'ab'|list }}"),
            "debXb54303['a', 'b']");
  EXPECT_EQ(Ok("{{ 2.5|round }} {{ 3|round }} {{ 2.567|round(2) }} {{ 2.1|round(0, 'ceil') }}"),
            "2.0 3 2.57 3.0");
  EXPECT_EQ(Ok("{{ ['A','a','b']|unique|list }} {{ '<b>'|safe }} {{ {'a': 1}|items|list }}"),
            "['A', 'b'] <b> [['a', 1]]");
  const char* people = R"({"p": [{"n": "x", "ok": true}, {"n": "y", "ok": false}, {"n": "z"}]})";
  EXPECT_EQ(Ok("{{ p|selectattr('ok')|map(attribute='n')|join }}", people), "x");
  EXPECT_EQ(Ok("{{ p|rejectattr('ok')|map(attribute='n')|join }}", people), "yz");
  EXPECT_EQ(Ok("{{ p|selectattr('ok', 'undefined')|map(attribute='n')|join }}", people), "z");
  EXPECT_EQ(Ok("{{ p|selectattr('n', 'equalto', 'y')|list|length }}", people), "1");
  EXPECT_EQ(Ok("{{ ['a','b']|map('upper')|join }}"), "AB");
}

TEST(JinjaTest, ToJsonIsPythonsJsonDumps) {
  EXPECT_EQ(Ok("{{ d|tojson }}", R"({"d": {"b": [1, 2.5, null, true], "a": "\u00e9\"<"}})"),
            "{\"b\": [1, 2.5, null, true], \"a\": \"\xc3\xa9\\\"<\"}");
  EXPECT_EQ(Ok("{{ d|tojson(indent=2) }}", R"({"d": {"a": {"b": 1}, "c": []}})"),
            "{\n  \"a\": {\n    \"b\": 1\n  },\n  \"c\": []\n}");
  EXPECT_EQ(Ok("{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}"), "{\"a\": 2, \"b\": 1}");
}

TEST(JinjaTest, SlicingIndexingAndMethods) {
  EXPECT_EQ(Ok("{{ 'hello'[1:] }} {{ 'abc'[::-1] }} {{ 'h\xc3\xa9llo'[1:3] }} {{ [1,2,3][-1] }} "
               "{{ [1,2,3][:-1] }} {{ 'abc'[0] }} {{ xs[1:] }}",
               R"({"xs": [1, 2]})"),
            "ello cba \xc3\xa9l 3 [1, 2] a [2]");
  EXPECT_EQ(Ok("{{ ' x '.strip() }}|{{ 'xxy'.lstrip('x') }}|{{ 'yxx'.rstrip('x') }}|"
               "{{ 'a,b'.split(',') }}|{{ 'a b  c'.split() }}|{{ 'abc'.startswith('ab') }}|"
               "{{ 'abc'.endswith(('x', 'c')) }}|{{ 'user'.title() }}|{{ 'Ab'.upper() }}"
               "{{ 'Ab'.lower() }}"),
            "x|y|y|['a', 'b']|['a', 'b', 'c']|True|True|User|ABab");
  EXPECT_EQ(Ok("{{ d.keys()|list }} {{ d.values()|list }} {{ d.get('a') }} {{ d.get('z', 0) }} "
               "{{ d['a'] }} {{ d.a }}",
               R"({"d": {"a": 1, "b": 2}})"),
            "['a', 'b'] [1, 2] 1 0 1 1");
}

TEST(JinjaTest, RaiseExceptionFailsWithTheMessage) {
  absl::StatusOr<std::string> out = Render(
      "{% if messages[0].role == 'system' %}{{ raise_exception('System role not "
      "supported') }}{% endif %}",
      R"({"messages": [{"role": "system"}]})");
  ASSERT_FALSE(out.ok());
  EXPECT_TRUE(IsRaisedByTemplate(out.status()));
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(out.status().message()), "System role not supported (line 1, column 41)");
}

TEST(JinjaTest, StrftimeNowUsesTheInjectedClock) {
  RenderOptions options;
  options.now = absl::FromCivil(absl::CivilSecond(2024, 7, 26, 12, 0, 0), absl::UTCTimeZone());
  absl::StatusOr<std::string> out = Render("{{ strftime_now('%d %b %Y') }}", "{}", options);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "26 Jul 2024");
}

TEST(JinjaTest, SyntaxErrorsNameTheLineAndColumn) {
  const auto parse_error = [](const std::string& source) {
    absl::StatusOr<Template> tmpl = Template::Parse(source);
    EXPECT_FALSE(tmpl.ok()) << source;
    return tmpl.ok() ? std::string() : std::string(tmpl.status().message());
  };
  EXPECT_THAT(parse_error("a\n{% if x %}b"), HasSubstr("missing '{% endif %}'"));
  EXPECT_THAT(parse_error("a\n  {{ x + }}"), HasSubstr("(line 2, column 10)"));
  EXPECT_THAT(parse_error("{{ 'unterminated }}"), HasSubstr("unterminated string"));
  EXPECT_THAT(parse_error("{% include 'x' %}"), HasSubstr("unsupported tag 'include'"));
  EXPECT_THAT(parse_error("{{ x "), HasSubstr("unclosed tag"));
  EXPECT_THAT(parse_error("{# never closed"), HasSubstr("unclosed comment"));
  EXPECT_THAT(parse_error("{{ (x }}"), HasSubstr("line 1"));
  EXPECT_THAT(parse_error("{% endfor %}"), HasSubstr("unknown or unsupported tag 'endfor'"));
}

TEST(JinjaTest, RuntimeErrorsNameTheLineAndColumn) {
  EXPECT_EQ(ErrorOf("\n{{ x.y }}"), "'x' is undefined (line 2, column 4)");
  EXPECT_THAT(ErrorOf("{{ 1|nosuchfilter }}"), HasSubstr("no filter named 'nosuchfilter'"));
  EXPECT_THAT(ErrorOf("{{ 1 is nosuchtest }}"), HasSubstr("no test named 'nosuchtest'"));
  EXPECT_THAT(ErrorOf("{% for x in 5 %}{% endfor %}"), HasSubstr("'int' object is not iterable"));
  EXPECT_THAT(ErrorOf("{% set x = 1 %}{% set x.y = 2 %}"), HasSubstr("not a namespace"));
  EXPECT_THAT(ErrorOf("{{ nofunction() }}"), HasSubstr("'nofunction' is undefined"));
  EXPECT_THAT(ErrorOf("{{ 's'.nomethod() }}"), HasSubstr("no method 'nomethod'"));
}

TEST(JinjaTest, HostileTemplatesHitLimitsInsteadOfHanging) {
  const auto code = [](const std::string& source, const RenderOptions& options = {}) {
    return Render(source, "{}", options).status().code();
  };
  // Unbounded recursion, huge loops, huge output.
  EXPECT_EQ(code("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(code("{% for i in range(100000000) %}{% endfor %}"),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(code("{{ 'x' * 1000000000 }}"), absl::StatusCode::kResourceExhausted);
  RenderOptions small;
  small.limits.max_output_bytes = 100;
  EXPECT_EQ(code("{% for i in range(1000) %}abc{% endfor %}", small),
            absl::StatusCode::kResourceExhausted);
  // Nesting too deep for the parser is a syntax error, not a stack overflow.
  std::string deep;
  for (int i = 0; i < 10000; ++i) deep += "(";
  EXPECT_FALSE(Template::Parse("{{ " + deep + " }}").ok());
  std::string deep_blocks;
  for (int i = 0; i < 10000; ++i) deep_blocks += "{% if true %}";
  EXPECT_FALSE(Template::Parse(deep_blocks).ok());
}

TEST(JinjaTest, ParsedOnceRendersManyTimes) {
  absl::StatusOr<Template> tmpl = Template::Parse("{{ greeting }}, {{ name }}");
  ASSERT_TRUE(tmpl.ok());
  for (const char* name : {"a", "b"}) {
    ValueDict context;
    context.Set("greeting", Value("hi"));
    context.Set("name", Value(name));
    absl::StatusOr<std::string> out = tmpl->Render(Value(std::move(context)));
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(*out, std::string("hi, ") + name);
  }
}

}  // namespace
}  // namespace semshare::jinja
