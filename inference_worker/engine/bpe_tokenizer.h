#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_BPE_TOKENIZER_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_BPE_TOKENIZER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "inference_worker/engine/byte_level_pretokenizer.h"
#include "inference_worker/engine/tokenizer.h"

namespace semshare {

class Json;

// Byte-level BPE from a Hugging Face tokenizer.json (GPT-2, Llama-3, Qwen2 style): added
// tokens matched literally first, then the pre-tokenizer (Split and/or ByteLevel), GPT-2's
// byte-to-character map, and merges applied lowest rank first. Decode skips special tokens.
class BpeTokenizer : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Open(const std::string& path);
  // InvalidArgument naming the offending field for malformed or unsupported documents.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> FromJson(absl::string_view json_text);

  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const override;
  std::string Decode(absl::Span<const int32_t> ids) const override;

  int32_t vocab_size() const override { return static_cast<int32_t>(id_to_token_.size()); }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }

 private:
  struct AddedToken {
    std::string content;
    int32_t id = -1;
    bool special = false;
    bool single_word = false;
    bool lstrip = false;
    bool rstrip = false;
  };
  // One pre-tokenizer in the sequence.
  struct PreTokenizerStep {
    bool is_byte_level = false;
    PreTokenizerPattern pattern = PreTokenizerPattern::kGpt2;  // Split, or ByteLevel's regex.
    bool use_regex = false;                                    // ByteLevel only.
    bool add_prefix_space = false;                             // ByteLevel only.
  };
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };

  BpeTokenizer() = default;

  absl::Status ParseAddedTokens(const Json& doc);
  absl::Status ParsePreTokenizer(const Json& pre_tokenizer);
  absl::Status ParseModel(const Json& model);

  // Encodes text that holds no added token: pre-tokenizes, byte-maps and merges each piece.
  void EncodeOrdinary(absl::string_view text, std::vector<int32_t>* ids) const;
  // Merges one byte-mapped pre-token.
  void EncodeWord(absl::string_view mapped, std::vector<int32_t>* ids) const;
  const Merge* FindMerge(int32_t left, int32_t right) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<int8_t> id_is_special_;            // 1 for special added tokens, which Decode skips.
  absl::flat_hash_map<uint64_t, Merge> merges_;  // Key: left id << 32 | right id.
  std::vector<AddedToken> added_tokens_;
  // Indices into added_tokens_ by first byte, longest content first.
  std::array<std::vector<int>, 256> added_by_first_byte_;
  std::vector<PreTokenizerStep> pre_tokenizer_;
  int64_t max_id_ = 0;  // Largest id accepted while loading.
  bool ignore_merges_ = false;
  int32_t unk_id_ = -1;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
};

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_BPE_TOKENIZER_H_
