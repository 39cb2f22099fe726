#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_TOKENIZER_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace semshare {

// Text <-> token ids. Implementations: SentencePiece BPE (tokenizer.model, Llama-2 style)
// and byte-level BPE (tokenizer.json, Llama-3 / Qwen2 style). Thread-safe after loading.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Encodes text without BOS/EOS; callers add BOS where the model wants it.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const = 0;
  // Decodes ids back to text; unknown ids decode to nothing.
  virtual std::string Decode(absl::Span<const int32_t> ids) const = 0;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when the vocabulary has none
  virtual int32_t eos_id() const = 0;  // -1 when the vocabulary has none
};

// Token ids of a prompt: `text` encoded, with the BOS in front when `add_bos` and the
// vocabulary has one. The one prompt tokenization of the engine and the router.
absl::StatusOr<std::vector<int32_t>> TokenizePrompt(const Tokenizer& tokenizer,
                                                    absl::string_view text, bool add_bos);

// Text for tokens as they are generated, one piece per token, decoding only a short window
// each time (not the whole output, which would make a long stream quadratic). The window
// starts one emitted piece back, so a tokenizer's start-of-text rules (SentencePiece drops the
// first piece's leading space) apply to context, not to the new text. A piece is held back
// ("") while the text ends in an incomplete character (U+FFFD) or the window's text does not
// extend its context's; the concatenation of the pieces is a prefix of Decode(all tokens) (the
// caller sends what is left after the last token).
class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer* tokenizer) : tokenizer_(tokenizer) {}
  std::string Next(int32_t token);

 private:
  const Tokenizer* tokenizer_;
  std::vector<int32_t> tokens_;
  size_t prefix_offset_ = 0;  // window start: the tokens of the last emitted piece's context
  size_t read_offset_ = 0;    // tokens before this are emitted
};

// Loads DIR/tokenizer.model if present, else DIR/tokenizer.json. NotFound when neither is.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& dir);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_TOKENIZER_H_
