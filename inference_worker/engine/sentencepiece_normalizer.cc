#include "inference_worker/engine/sentencepiece_normalizer.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/utf8.h"

namespace semshare {
namespace {

constexpr absl::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581, "▁".

uint32_t ReadLittleEndian32(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(b[0]) | (static_cast<uint32_t>(b[1]) << 8) |
         (static_cast<uint32_t>(b[2]) << 16) | (static_cast<uint32_t>(b[3]) << 24);
}

// darts-clone DoubleArrayUnit accessors.
bool UnitHasLeaf(uint32_t unit) { return ((unit >> 8) & 1) == 1; }
uint32_t UnitValue(uint32_t unit) { return unit & ((1U << 31) - 1); }
uint32_t UnitLabel(uint32_t unit) { return unit & ((1U << 31) | 0xFF); }
uint32_t UnitOffset(uint32_t unit) { return (unit >> 10) << ((unit & (1U << 9)) >> 6); }

}  // namespace

absl::StatusOr<std::unique_ptr<SentencePieceNormalizer>> SentencePieceNormalizer::Create(
    absl::string_view precompiled_charsmap, const Options& options,
    const std::vector<std::string>& user_defined_symbols) {
  std::unique_ptr<SentencePieceNormalizer> normalizer(new SentencePieceNormalizer());
  normalizer->options_ = options;
  if (!precompiled_charsmap.empty()) {
    // Layout: uint32 trie size in bytes, the trie, then the replacement strings.
    if (precompiled_charsmap.size() <= 4) {
      return absl::InvalidArgumentError("sentencepiece model: precompiled_charsmap too short");
    }
    const uint32_t trie_bytes = ReadLittleEndian32(precompiled_charsmap.data());
    if (trie_bytes == 0 || trie_bytes % 4 != 0 || trie_bytes > precompiled_charsmap.size() - 4) {
      return absl::InvalidArgumentError(
          absl::StrCat("sentencepiece model: precompiled_charsmap trie size ", trie_bytes,
                       " is invalid for a ", precompiled_charsmap.size(), "-byte blob"));
    }
    normalizer->trie_.resize(trie_bytes / 4);
    for (size_t i = 0; i < normalizer->trie_.size(); ++i) {
      normalizer->trie_[i] = ReadLittleEndian32(precompiled_charsmap.data() + 4 + 4 * i);
    }
    normalizer->normalized_ = std::string(precompiled_charsmap.substr(4 + trie_bytes));
  }
  for (const std::string& symbol : user_defined_symbols) {
    if (symbol.empty()) continue;
    normalizer->user_defined_symbols_.insert(symbol);
    normalizer->user_defined_lengths_.push_back(symbol.size());
  }
  auto& lengths = normalizer->user_defined_lengths_;
  std::sort(lengths.begin(), lengths.end(), std::greater<size_t>());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  return normalizer;
}

size_t SentencePieceNormalizer::MatchUserDefinedSymbol(absl::string_view text) const {
  for (const size_t length : user_defined_lengths_) {
    if (length <= text.size() && user_defined_symbols_.contains(text.substr(0, length))) {
      return length;
    }
  }
  return 0;
}

size_t SentencePieceNormalizer::LongestCharsmapMatch(absl::string_view input,
                                                     uint32_t* replacement_offset) const {
  // darts-clone commonPrefixSearch, keeping only the longest hit. Indices are checked because
  // the trie comes from a file.
  if (trie_.empty()) return 0;
  size_t longest = 0;
  size_t node = UnitOffset(trie_[0]);
  for (size_t i = 0; i < input.size(); ++i) {
    const auto label = static_cast<unsigned char>(input[i]);
    node ^= label;
    if (node >= trie_.size()) break;
    const uint32_t unit = trie_[node];
    if (UnitLabel(unit) != label) break;
    node ^= UnitOffset(unit);
    if (node >= trie_.size()) break;
    if (UnitHasLeaf(unit)) {
      const uint32_t value = UnitValue(trie_[node]);
      if (value < normalized_.size()) {
        longest = i + 1;
        *replacement_offset = value;
      }
    }
  }
  return longest;
}

absl::string_view SentencePieceNormalizer::NormalizePrefix(absl::string_view input,
                                                           size_t* consumed) const {
  if (const size_t length = MatchUserDefinedSymbol(input); length > 0) {
    *consumed = length;
    return input.substr(0, length);
  }
  uint32_t offset = 0;
  if (const size_t length = LongestCharsmapMatch(input, &offset); length > 0) {
    *consumed = length;
    const size_t end = normalized_.find('\0', offset);
    return absl::string_view(normalized_)
        .substr(offset, end == std::string::npos ? std::string::npos : end - offset);
  }
  char32_t code_point;
  int length;
  if (!DecodeUtf8Char(input, &code_point, &length)) {
    *consumed = 1;  // One bad byte becomes one U+FFFD.
    return kUtf8ReplacementChar;
  }
  *consumed = static_cast<size_t>(length);
  return input.substr(0, *consumed);
}

std::string SentencePieceNormalizer::Normalize(absl::string_view input) const {
  std::string out;
  size_t consumed = 0;
  if (options_.remove_extra_whitespaces) {
    while (!input.empty()) {
      const absl::string_view piece = NormalizePrefix(input, &consumed);
      if (piece != " ") break;
      input.remove_prefix(consumed);
    }
  }
  if (input.empty()) return out;
  out.reserve(input.size() * 3);
  const auto append_space = [this, &out]() {
    if (options_.escape_whitespaces) {
      out.append(kSpaceSymbol.data(), kSpaceSymbol.size());
    } else {
      out.push_back(' ');
    }
  };
  if (options_.add_dummy_prefix) append_space();

  bool previous_is_space = options_.remove_extra_whitespaces;
  while (!input.empty()) {
    absl::string_view piece = NormalizePrefix(input, &consumed);
    input.remove_prefix(consumed);
    // A replacement may itself start with spaces; drop them after a space.
    while (previous_is_space && absl::ConsumePrefix(&piece, " ")) {
    }
    if (!piece.empty()) {
      for (const char c : piece) {
        if (c == ' ') {
          append_space();
        } else {
          out.push_back(c);
        }
      }
      previous_is_space = absl::EndsWith(piece, " ");
    }
    if (!options_.remove_extra_whitespaces) previous_is_space = false;
  }

  if (options_.remove_extra_whitespaces) {
    const absl::string_view space = options_.escape_whitespaces ? kSpaceSymbol : " ";
    while (absl::EndsWith(out, space)) out.resize(out.size() - space.size());
  }
  return out;
}

}  // namespace semshare
