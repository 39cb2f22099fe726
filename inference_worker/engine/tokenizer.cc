#include "inference_worker/engine/tokenizer.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "inference_worker/engine/bpe_tokenizer.h"
#include "inference_worker/engine/sentencepiece_tokenizer.h"

namespace semshare {

std::string IncrementalDetokenizer::Next(int32_t token) {
  tokens_.push_back(token);
  const absl::Span<const int32_t> all(tokens_);
  const std::string context =
      tokenizer_->Decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_));
  std::string text = tokenizer_->Decode(all.subspan(prefix_offset_));
  constexpr absl::string_view kReplacementCharacter = "\xEF\xBF\xBD";
  if (text.size() <= context.size() || !absl::StartsWith(text, context) ||
      absl::EndsWith(text, kReplacementCharacter)) {
    return "";
  }
  prefix_offset_ = read_offset_;
  read_offset_ = tokens_.size();
  return text.substr(context.size());
}

absl::StatusOr<std::vector<int32_t>> TokenizePrompt(const Tokenizer& tokenizer,
                                                    absl::string_view text, bool add_bos) {
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(text);
  if (ids.ok() && add_bos && tokenizer.bos_id() >= 0) ids->insert(ids->begin(), tokenizer.bos_id());
  return ids;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& dir) {
  // tokenizer.model wins: Llama-2 style checkpoints ship both, and the SentencePiece model is
  // the original the tokenizer.json was converted from.
  const std::string model_path = JoinPath(dir, "tokenizer.model");
  const std::string json_path = JoinPath(dir, "tokenizer.json");
  const bool has_json = FileExists(json_path);
  absl::Status model_status;
  if (FileExists(model_path)) {
    absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
        SentencePieceTokenizer::Open(model_path);
    if (tokenizer.ok()) return std::unique_ptr<Tokenizer>(std::move(tokenizer).value());
    // Meta's Llama-3 downloads call their tiktoken file tokenizer.model too; when that is
    // what failed to parse, the tokenizer.json beside it is the one to use.
    if (!has_json) return tokenizer.status();
    model_status = tokenizer.status();
  }
  if (has_json) {
    absl::StatusOr<std::unique_ptr<BpeTokenizer>> tokenizer = BpeTokenizer::Open(json_path);
    if (tokenizer.ok()) return std::unique_ptr<Tokenizer>(std::move(tokenizer).value());
    if (model_status.ok()) return tokenizer.status();
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(tokenizer.status().message(),
                                     "; and tokenizer.model: ", model_status.message()));
  }
  return absl::NotFoundError(
      absl::StrCat("no tokenizer.model or tokenizer.json in directory ", dir));
}

}  // namespace semshare
