#include "common/jinja/lexer.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/utf8.h"

namespace semshare::jinja {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool IsInlineSpace(char c) { return IsSpace(c) && c != '\n'; }
bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

class Lexer {
 public:
  Lexer(absl::string_view source, const LexOptions& options) : source_(source), options_(options) {}

  absl::StatusOr<std::vector<Token>> Run() {
    size_t pos = 0;
    const size_t n = source_.size();
    while (pos < n) {
      const size_t start = FindTagStart(pos);
      std::string text(
          source_.substr(pos, start == absl::string_view::npos ? n - pos : start - pos));
      if (start == absl::string_view::npos) {
        AddText(std::move(text), pos);
        break;
      }
      const char kind = source_[start + 1];
      const char control = start + 2 < n ? source_[start + 2] : '\0';
      if (control == '-') {
        while (!text.empty() && IsSpace(text.back())) text.pop_back();
      } else if (control != '+' && options_.lstrip_blocks && kind != '{') {
        // Strip the spaces between the start of the line and a block or comment tag.
        const size_t line_start = text.rfind('\n');
        const size_t l_pos = line_start == std::string::npos ? 0 : line_start + 1;
        const bool line_starting = pos == 0 || source_[pos - 1] == '\n';
        if (l_pos > 0 || line_starting) {
          bool only_space = l_pos < text.size();
          for (size_t i = l_pos; i < text.size(); ++i) only_space &= IsInlineSpace(text[i]);
          if (only_space) text.resize(l_pos);
        }
      }
      AddText(std::move(text), pos);
      absl::StatusOr<size_t> next = kind == '#' ? SkipComment(start) : LexTag(start, kind);
      if (!next.ok()) return next.status();
      pos = *next;
    }
    tokens_.push_back(Token{TokenKind::kEof, "", 0, 0, n});
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    for (size_t i = source_.find('{', from); i != absl::string_view::npos;
         i = source_.find('{', i + 1)) {
      if (i + 1 < source_.size()) {
        const char c = source_[i + 1];
        if (c == '{' || c == '%' || c == '#') return i;
      }
    }
    return absl::string_view::npos;
  }

  void AddText(std::string text, size_t pos) {
    if (text.empty()) return;
    tokens_.push_back(Token{TokenKind::kText, std::move(text), 0, 0, pos});
  }

  // After a tag's end: `-` eats all following whitespace, trim_blocks one newline after a
  // block or comment tag (unless `+`).
  size_t AfterTagEnd(size_t end, char control, bool block_like) const {
    if (control == '-') {
      while (end < source_.size() && IsSpace(source_[end])) ++end;
    } else if (control != '+' && block_like && options_.trim_blocks && end < source_.size() &&
               source_[end] == '\n') {
      ++end;
    }
    return end;
  }

  absl::StatusOr<size_t> SkipComment(size_t start) const {
    const size_t close = source_.find("#}", start + 2);
    if (close == absl::string_view::npos) {
      return ErrorAt(source_, start, "unclosed comment: missing '#}'");
    }
    const char control = close > start + 2 ? source_[close - 1] : '\0';
    return AfterTagEnd(close + 2, control, /*block_like=*/true);
  }

  // A `{% raw %}` block: the text up to `{% endraw %}` is data.
  bool TryRaw(size_t after_open, size_t start, absl::StatusOr<size_t>* next) {
    size_t p = after_open;
    while (p < source_.size() && IsSpace(source_[p])) ++p;
    if (source_.substr(p, 3) != "raw" || (p + 3 < source_.size() && IsNameChar(source_[p + 3]))) {
      return false;
    }
    p += 3;
    while (p < source_.size() && IsSpace(source_[p])) ++p;
    char open_control = '\0';
    if (p < source_.size() && (source_[p] == '-' || source_[p] == '+')) open_control = source_[p++];
    if (source_.substr(p, 2) != "%}") return false;
    const size_t body_start = AfterTagEnd(p + 2, open_control, true);
    for (size_t tag = source_.find("{%", body_start); tag != absl::string_view::npos;
         tag = source_.find("{%", tag + 2)) {
      size_t q = tag + 2;
      const bool strip_before = q < source_.size() && source_[q] == '-';
      if (q < source_.size() && (source_[q] == '-' || source_[q] == '+')) ++q;
      while (q < source_.size() && IsSpace(source_[q])) ++q;
      if (source_.substr(q, 6) != "endraw") continue;
      q += 6;
      while (q < source_.size() && IsSpace(source_[q])) ++q;
      char close_control = '\0';
      if (q < source_.size() && (source_[q] == '-' || source_[q] == '+')) {
        close_control = source_[q++];
      }
      if (source_.substr(q, 2) != "%}") continue;
      std::string body(source_.substr(body_start, tag - body_start));
      if (strip_before) {
        while (!body.empty() && IsSpace(body.back())) body.pop_back();
      }
      AddText(std::move(body), body_start);
      *next = AfterTagEnd(q + 2, close_control, true);
      return true;
    }
    *next = ErrorAt(source_, start, "unclosed raw block: missing '{% endraw %}'");
    return true;
  }

  absl::StatusOr<size_t> LexTag(size_t start, char kind) {
    const bool block = kind == '%';
    size_t p = start + 2;
    if (p < source_.size() && (source_[p] == '-' || source_[p] == '+')) ++p;
    if (block) {
      absl::StatusOr<size_t> next;
      if (TryRaw(p, start, &next)) return next;
    }
    tokens_.push_back(
        Token{block ? TokenKind::kBlockBegin : TokenKind::kVarBegin, "", 0, 0, start});
    std::vector<char> brackets;
    const absl::string_view end = block ? "%}" : "}}";
    while (true) {
      while (p < source_.size() && IsSpace(source_[p])) ++p;
      if (p >= source_.size()) {
        return ErrorAt(source_, start, absl::StrCat("unclosed tag: missing '", end, "'"));
      }
      if (brackets.empty()) {
        char control = '\0';
        size_t q = p;
        if (source_[q] == '-' || source_[q] == '+') control = source_[q++];
        if (source_.substr(q, 2) == end && (control != '+' || block)) {
          tokens_.push_back(Token{block ? TokenKind::kBlockEnd : TokenKind::kVarEnd, "", 0, 0, p});
          return AfterTagEnd(q + 2, control, block);
        }
      }
      const char c = source_[p];
      if (IsNameStart(c)) {
        size_t q = p;
        while (q < source_.size() && IsNameChar(source_[q])) ++q;
        tokens_.push_back(Token{TokenKind::kName, std::string(source_.substr(p, q - p)), 0, 0, p});
        p = q;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        absl::Status status = LexNumber(&p);
        if (!status.ok()) return status;
      } else if (c == '\'' || c == '"') {
        absl::Status status = LexString(&p);
        if (!status.ok()) return status;
      } else {
        static constexpr absl::string_view kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
        size_t length = 0;
        for (absl::string_view op : kTwo) {
          if (source_.substr(p, 2) == op) length = 2;
        }
        if (length == 0) {
          if (absl::string_view("+-*/%~<>=.,:|()[]{}").find(c) == absl::string_view::npos) {
            return ErrorAt(source_, p,
                           absl::StrCat("unexpected character '", std::string(1, c), "' in a tag"));
          }
          length = 1;
          if (c == '(' || c == '[' || c == '{') brackets.push_back(c);
          if (c == ')' || c == ']' || c == '}') {
            const char open = c == ')' ? '(' : c == ']' ? '[' : '{';
            if (brackets.empty() || brackets.back() != open) {
              return ErrorAt(source_, p, absl::StrCat("unbalanced '", std::string(1, c), "'"));
            }
            brackets.pop_back();
          }
        }
        tokens_.push_back(
            Token{TokenKind::kOperator, std::string(source_.substr(p, length)), 0, 0, p});
        p += length;
      }
    }
  }

  absl::Status LexNumber(size_t* pos) {
    size_t p = *pos;
    const auto digits = [&] {
      while (p < source_.size() &&
             (std::isdigit(static_cast<unsigned char>(source_[p])) || source_[p] == '_')) {
        ++p;
      }
    };
    digits();
    bool is_float = false;
    if (p + 1 < source_.size() && source_[p] == '.' &&
        std::isdigit(static_cast<unsigned char>(source_[p + 1]))) {
      is_float = true;
      ++p;
      digits();
    }
    if (p < source_.size() && (source_[p] == 'e' || source_[p] == 'E')) {
      size_t q = p + 1;
      if (q < source_.size() && (source_[q] == '+' || source_[q] == '-')) ++q;
      if (q < source_.size() && std::isdigit(static_cast<unsigned char>(source_[q]))) {
        is_float = true;
        p = q;
        digits();
      }
    }
    std::string text(source_.substr(*pos, p - *pos));
    text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
    Token token{is_float ? TokenKind::kFloat : TokenKind::kInt, text, 0, 0, *pos};
    if (is_float ? !absl::SimpleAtod(text, &token.float_value)
                 : !absl::SimpleAtoi(text, &token.int_value)) {
      return ErrorAt(source_, *pos, absl::StrCat("bad number '", text, "'"));
    }
    tokens_.push_back(std::move(token));
    *pos = p;
    return absl::OkStatus();
  }

  // Python's string escapes, as jinja2 decodes them.
  absl::Status LexString(size_t* pos) {
    const size_t start = *pos;
    const char quote = source_[start];
    std::string value;
    size_t p = start + 1;
    while (true) {
      if (p >= source_.size()) return ErrorAt(source_, start, "unterminated string literal");
      const char c = source_[p];
      if (c == quote) break;
      if (c != '\\' || p + 1 >= source_.size()) {
        value.push_back(c);
        ++p;
        continue;
      }
      const char e = source_[p + 1];
      p += 2;
      switch (e) {
        case 'n':
          value.push_back('\n');
          break;
        case 't':
          value.push_back('\t');
          break;
        case 'r':
          value.push_back('\r');
          break;
        case 'b':
          value.push_back('\b');
          break;
        case 'f':
          value.push_back('\f');
          break;
        case 'v':
          value.push_back('\v');
          break;
        case 'a':
          value.push_back('\a');
          break;
        case '0':
          value.push_back('\0');
          break;
        case '\\':
          value.push_back('\\');
          break;
        case '\'':
          value.push_back('\'');
          break;
        case '"':
          value.push_back('"');
          break;
        case '\n':
          break;  // a line continuation
        case 'x':
        case 'u':
        case 'U': {
          const size_t width = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t code = 0;
          bool ok = p + width <= source_.size();
          for (size_t i = 0; ok && i < width; ++i) {
            const char h = source_[p + i];
            if (!std::isxdigit(static_cast<unsigned char>(h))) {
              ok = false;
              break;
            }
            code = code * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h))
                                                         ? h - '0'
                                                         : (std::tolower(h) - 'a' + 10));
          }
          if (!ok || code > 0x10FFFF) {
            return ErrorAt(source_, p - 2, "bad escape in a string literal");
          }
          AppendUtf8(static_cast<char32_t>(code), &value);
          p += width;
          break;
        }
        default:
          value.push_back('\\');
          value.push_back(e);
      }
    }
    tokens_.push_back(Token{TokenKind::kString, std::move(value), 0, 0, start});
    *pos = p + 1;
    return absl::OkStatus();
  }

  absl::string_view source_;
  const LexOptions& options_;
  std::vector<Token> tokens_;
};

}  // namespace

std::string NormalizeSource(absl::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

absl::StatusOr<std::vector<Token>> Tokenize(absl::string_view source, const LexOptions& options) {
  return Lexer(source, options).Run();
}

std::string LocationSuffix(absl::string_view source, size_t pos) {
  pos = std::min(pos, source.size());
  size_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < pos; ++i) {
    if (source[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return absl::StrCat(" (line ", line, ", column ", pos - line_start + 1, ")");
}

absl::Status ErrorAt(absl::string_view source, size_t pos, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(message, LocationSuffix(source, pos)));
}

}  // namespace semshare::jinja
