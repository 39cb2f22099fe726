#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_BYTE_LEVEL_PRETOKENIZER_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_BYTE_LEVEL_PRETOKENIZER_H_

#include <array>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace semshare {

// The pre-tokenizer regexes of byte-level BPE tokenizers, implemented by hand (no regex
// engine with \p{L}/\p{N} in the dependency budget). Each is matched exactly over ASCII; for
// other code points Unicode classes are approximated: white space exactly, common digits as
// numbers, combining marks, punctuation, symbol and emoji blocks as neither letter nor number,
// and every other code point as a letter.
enum class PreTokenizerPattern {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kGpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
  //  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kLlama3,
  // As kLlama3 with \p{N} (single digits) in place of \p{N}{1,3}.
  kQwen2,
};

// Identifies a Split pre-tokenizer's regex. InvalidArgument quoting it when it is none of the
// patterns above.
absl::StatusOr<PreTokenizerPattern> RecognizePreTokenizerPattern(absl::string_view regex);

// Appends the pieces of `text` matched by `pattern`; together they cover `text` exactly.
void SplitPreTokens(absl::string_view text, PreTokenizerPattern pattern,
                    std::vector<absl::string_view>* pieces);

// GPT-2's reversible byte -> printable character map: entry b is the UTF-8 of the character
// byte b is written as in the vocabulary ("Ġ" for ' ', "Ċ" for '\n').
const std::array<std::string, 256>& ByteLevelAlphabet();

// Inverse of ByteLevelAlphabet: the byte for a code point, or -1 when it stands for none.
int ByteLevelCharToByte(char32_t code_point);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_BYTE_LEVEL_PRETOKENIZER_H_
