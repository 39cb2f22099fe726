#ifndef SEMSHARE_COMMON_UTF8_H_
#define SEMSHARE_COMMON_UTF8_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace semshare {

// U+FFFD, what both tokenizer libraries substitute for bytes that are not UTF-8.
inline constexpr absl::string_view kUtf8ReplacementChar = "\xEF\xBF\xBD";

// Decodes the first character of `text` strictly (no overlongs, no surrogates, nothing past
// U+10FFFF). Returns false on an invalid or truncated sequence, with *length = 1 so callers
// can skip one byte and go on. `text` must not be empty.
bool DecodeUtf8Char(absl::string_view text, char32_t* code_point, int* length);

// The offset of the first byte of `text` that does not start a valid UTF-8 character (as
// DecodeUtf8Char judges it), or npos when all of `text` is valid UTF-8.
size_t FindInvalidUtf8(absl::string_view text);

// Appends the UTF-8 encoding of a code point (<= U+10FFFF).
void AppendUtf8(char32_t code_point, std::string* out);

// Appends `bytes` with each maximal ill-formed subsequence replaced by one U+FFFD, the way
// Rust's String::from_utf8_lossy (and so Hugging Face tokenizers) does.
void AppendUtf8Lossy(absl::string_view bytes, std::string* out);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_UTF8_H_
