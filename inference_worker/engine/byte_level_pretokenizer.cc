#include "inference_worker/engine/byte_level_pretokenizer.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/utf8.h"

namespace semshare {
namespace {

constexpr absl::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr absl::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr absl::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

bool InRange(char32_t c, char32_t low, char32_t high) { return c >= low && c <= high; }

CharClass Classify(char32_t c) {
  if (c < 0x80) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return CharClass::kLetter;
    if (c >= '0' && c <= '9') return CharClass::kNumber;
    if (c == ' ' || InRange(c, 0x09, 0x0D)) return CharClass::kSpace;
    return CharClass::kOther;
  }
  // Unicode White_Space, exactly.
  if (c == 0x85 || c == 0xA0 || c == 0x1680 || InRange(c, 0x2000, 0x200A) || c == 0x2028 ||
      c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000) {
    return CharClass::kSpace;
  }
  if (c < 0x100) {  // Latin-1: letters, a few numbers, the rest controls and symbols.
    if (c == 0xAA || c == 0xB5 || c == 0xBA || (c >= 0xC0 && c != 0xD7 && c != 0xF7)) {
      return CharClass::kLetter;
    }
    if (c == 0xB2 || c == 0xB3 || c == 0xB9 || InRange(c, 0xBC, 0xBE)) return CharClass::kNumber;
    return CharClass::kOther;
  }
  // Common \p{N} outside ASCII: Arabic-Indic, Devanagari, super/subscripts, number forms,
  // circled numbers, fullwidth digits.
  if (InRange(c, 0x660, 0x669) || InRange(c, 0x6F0, 0x6F9) || InRange(c, 0x966, 0x96F) ||
      c == 0x2070 || InRange(c, 0x2074, 0x2079) || InRange(c, 0x2080, 0x2089) ||
      InRange(c, 0x2150, 0x2189) || InRange(c, 0x2460, 0x249B) || c == 0x3007 ||
      InRange(c, 0x3021, 0x3029) || InRange(c, 0xFF10, 0xFF19)) {
    return CharClass::kNumber;
  }
  // Neither letters nor numbers: combining marks, general punctuation and format characters,
  // currency, arrows/math/technical/box drawing/dingbats, CJK punctuation, variation
  // selectors, fullwidth punctuation, specials, emoji and pictographs.
  if (InRange(c, 0x300, 0x36F) || InRange(c, 0x2000, 0x206F) || InRange(c, 0x20A0, 0x20FF) ||
      InRange(c, 0x2190, 0x23FF) || InRange(c, 0x2500, 0x27BF) || InRange(c, 0x2900, 0x2BFF) ||
      InRange(c, 0x3001, 0x3006) || InRange(c, 0x3008, 0x3020) || c == 0x3030 ||
      InRange(c, 0xFE00, 0xFE0F) || InRange(c, 0xFE30, 0xFE4F) || InRange(c, 0xFF01, 0xFF0F) ||
      InRange(c, 0xFF1A, 0xFF20) || InRange(c, 0xFF3B, 0xFF40) || InRange(c, 0xFF5B, 0xFF65) ||
      InRange(c, 0xFFF0, 0xFFFF) || InRange(c, 0x1F000, 0x1FAFF) || InRange(c, 0xE0000, 0xE007F)) {
    return CharClass::kOther;
  }
  return CharClass::kLetter;
}

struct Char {
  char32_t code_point;
  CharClass cls;
  size_t begin;  // Byte offset in the text.
};

// Matches the regex alternatives in order at each position, as a backtracking regex engine
// would; each Match* returns the end index of the match or 0 for none (a match is never
// empty, and never ends at index 0).
class Splitter {
 public:
  Splitter(absl::string_view text, PreTokenizerPattern pattern) : pattern_(pattern) {
    chars_.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
      char32_t code_point;
      int length;
      // A byte that is not UTF-8 counts as one non-letter, non-number character.
      const bool valid = DecodeUtf8Char(text.substr(pos), &code_point, &length);
      chars_.push_back({code_point, valid ? Classify(code_point) : CharClass::kOther, pos});
      pos += static_cast<size_t>(length);
    }
  }

  void Split(absl::string_view text, std::vector<absl::string_view>* pieces) const {
    const size_t n = chars_.size();
    for (size_t i = 0; i < n;) {
      const size_t end = pattern_ == PreTokenizerPattern::kGpt2 ? MatchGpt2(i) : MatchGpt4(i);
      const size_t begin_byte = chars_[i].begin;
      const size_t end_byte = end < n ? chars_[end].begin : text.size();
      pieces->push_back(text.substr(begin_byte, end_byte - begin_byte));
      i = end;
    }
  }

 private:
  bool Is(size_t i, CharClass cls) const { return i < chars_.size() && chars_[i].cls == cls; }
  bool IsNewline(size_t i) const {
    return i < chars_.size() && (chars_[i].code_point == '\r' || chars_[i].code_point == '\n');
  }
  char32_t At(size_t i) const { return i < chars_.size() ? chars_[i].code_point : 0; }
  size_t RunEnd(size_t i, CharClass cls) const {
    while (Is(i, cls)) ++i;
    return i;
  }

  size_t MatchContraction(size_t i, bool ignore_case) const {
    if (At(i) != '\'') return 0;
    const auto fold = [ignore_case](char32_t c) {
      return ignore_case && c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
    };
    for (const absl::string_view suffix : {"s", "t", "re", "ve", "m", "ll", "d"}) {
      bool matched = true;
      for (size_t k = 0; k < suffix.size() && matched; ++k) {
        matched = fold(At(i + 1 + k)) == static_cast<char32_t>(suffix[k]);
      }
      if (matched) return i + 1 + suffix.size();
    }
    return 0;
  }

  // \s+(?!\S) then \s+ : a run of spaces gives up its last one to the word that follows.
  size_t MatchTrailingSpace(size_t i) const {
    const size_t end = RunEnd(i, CharClass::kSpace);
    if (end == chars_.size() || end - i < 2) return end;
    return end - 1;
  }

  size_t MatchGpt2(size_t i) const {
    if (const size_t end = MatchContraction(i, /*ignore_case=*/false)) return end;
    const size_t start = At(i) == ' ' && i + 1 < chars_.size() ? i + 1 : i;
    for (const CharClass cls : {CharClass::kLetter, CharClass::kNumber, CharClass::kOther}) {
      // ' ?X+': the optional space is taken only when an X follows it.
      if (Is(start, cls)) return RunEnd(start, cls);
      if (start != i && Is(i, cls)) return RunEnd(i, cls);
    }
    return MatchTrailingSpace(i);
  }

  size_t MatchGpt4(size_t i) const {
    if (const size_t end = MatchContraction(i, /*ignore_case=*/true)) return end;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (Is(i, CharClass::kLetter)) return RunEnd(i, CharClass::kLetter);
    if (!IsNewline(i) && !Is(i, CharClass::kNumber) && Is(i + 1, CharClass::kLetter)) {
      return RunEnd(i + 1, CharClass::kLetter);
    }
    // \p{N}{1,3} or \p{N}
    if (Is(i, CharClass::kNumber)) {
      const size_t limit = pattern_ == PreTokenizerPattern::kQwen2 ? 1 : 3;
      size_t end = i;
      while (end - i < limit && Is(end, CharClass::kNumber)) ++end;
      return end;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]*
    const size_t start = At(i) == ' ' && Is(i + 1, CharClass::kOther) ? i + 1 : i;
    if (Is(start, CharClass::kOther)) {
      size_t end = RunEnd(start, CharClass::kOther);
      while (IsNewline(end)) ++end;
      return end;
    }
    // \s*[\r\n]+ : spaces up to and including the last line break of the run.
    const size_t space_end = RunEnd(i, CharClass::kSpace);
    for (size_t k = space_end; k > i; --k) {
      if (IsNewline(k - 1)) return k;
    }
    return MatchTrailingSpace(i);
  }

  PreTokenizerPattern pattern_;
  std::vector<Char> chars_;
};

struct ByteLevelTables {
  std::array<std::string, 256> alphabet;
  std::array<int16_t, 324> byte_of{};  // Indexed by code point; mapped code points are < 324.
};

const ByteLevelTables& Tables() {
  static const ByteLevelTables* const tables = [] {
    auto* t = new ByteLevelTables();
    t->byte_of.fill(-1);
    // Printable Latin-1 bytes stand for themselves; the others are shifted to 256 + k.
    int shifted = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      const char32_t code_point = printable ? b : 256 + shifted++;
      AppendUtf8(code_point, &t->alphabet[b]);
      t->byte_of[code_point] = static_cast<int16_t>(b);
    }
    return t;
  }();
  return *tables;
}

}  // namespace

absl::StatusOr<PreTokenizerPattern> RecognizePreTokenizerPattern(absl::string_view regex) {
  if (regex == kGpt2Regex) return PreTokenizerPattern::kGpt2;
  if (regex == kLlama3Regex) return PreTokenizerPattern::kLlama3;
  if (regex == kQwen2Regex) return PreTokenizerPattern::kQwen2;
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported pre-tokenizer regex (known: GPT-2, Llama-3, Qwen2 patterns): ", regex));
}

void SplitPreTokens(absl::string_view text, PreTokenizerPattern pattern,
                    std::vector<absl::string_view>* pieces) {
  Splitter(text, pattern).Split(text, pieces);
}

const std::array<std::string, 256>& ByteLevelAlphabet() { return Tables().alphabet; }

int ByteLevelCharToByte(char32_t code_point) {
  const auto& byte_of = Tables().byte_of;
  return code_point < byte_of.size() ? byte_of[code_point] : -1;
}

}  // namespace semshare
