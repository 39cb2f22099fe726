#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_SENTENCEPIECE_NORMALIZER_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_SENTENCEPIECE_NORMALIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace semshare {

// sentencepiece's text normalizer: the precompiled character map (a darts-clone double-array
// trie of UTF-8 sequences plus a blob of their replacements, e.g. NFKC for "nmt_nfkc"; empty
// for "identity"), then whitespace handling: optional removal of leading, trailing and
// repeated spaces, spaces escaped as U+2581 "▁", and the dummy "▁" prefix.
class SentencePieceNormalizer {
 public:
  struct Options {
    bool add_dummy_prefix = true;
    bool remove_extra_whitespaces = true;
    bool escape_whitespaces = true;
  };

  // InvalidArgument when the charsmap blob is malformed. User-defined symbols are kept
  // verbatim (never normalized), as sentencepiece does.
  static absl::StatusOr<std::unique_ptr<SentencePieceNormalizer>> Create(
      absl::string_view precompiled_charsmap, const Options& options,
      const std::vector<std::string>& user_defined_symbols);

  std::string Normalize(absl::string_view input) const;

  // Byte length of the longest user-defined symbol that starts `text`, or 0 when none does.
  size_t MatchUserDefinedSymbol(absl::string_view text) const;

 private:
  SentencePieceNormalizer() = default;

  // Normalizes the longest normalizable prefix of `input`: returns its replacement and sets
  // *consumed to the number of input bytes it stands for (>= 1).
  absl::string_view NormalizePrefix(absl::string_view input, size_t* consumed) const;
  // Longest charsmap match at the start of `input`: its length (0 for none) and the offset of
  // its replacement in normalized_.
  size_t LongestCharsmapMatch(absl::string_view input, uint32_t* replacement_offset) const;

  Options options_;
  std::vector<uint32_t> trie_;  // darts-clone units, host order.
  std::string normalized_;      // NUL-separated replacement strings.
  absl::flat_hash_set<std::string> user_defined_symbols_;
  std::vector<size_t> user_defined_lengths_;  // Distinct lengths, longest first.
};

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_SENTENCEPIECE_NORMALIZER_H_
