#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_SENTENCEPIECE_TOKENIZER_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_SENTENCEPIECE_TOKENIZER_H_

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
#include "inference_worker/engine/sentencepiece_model.h"
#include "inference_worker/engine/sentencepiece_normalizer.h"
#include "inference_worker/engine/tokenizer.h"

namespace semshare {

// A SentencePiece tokenizer (tokenizer.model) that reproduces libsentencepiece's Encode/Decode
// without linking it: normalization; for BPE models (Llama-2, Mistral) highest-score-first pair
// merging and resegmentation of unused pieces, for unigram models the best-scoring
// segmentation (Viterbi, as libsentencepiece's optimized encoder, ties included); then byte
// fallback and the merging of unknown runs.
class SentencePieceTokenizer : public Tokenizer {
 public:
  // Reads and parses a tokenizer.model file.
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> Open(const std::string& path);
  // From the serialized ModelProto bytes. InvalidArgument for models this cannot encode
  // (word, char; inconsistent pieces), DataLoss for corrupt bytes.
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> FromSerializedProto(
      absl::string_view serialized);

  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const override;
  std::string Decode(absl::Span<const int32_t> ids) const override;

  int32_t vocab_size() const override { return static_cast<int32_t>(model_.pieces.size()); }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }

  // The piece string of an id ("" when out of range); for debugging and tests.
  absl::string_view IdToPiece(int32_t id) const;

 private:
  SentencePieceTokenizer() = default;

  // Id of a final piece: reserved (control/unknown/byte) pieces first, then mergeable ones,
  // else unk -- the order libsentencepiece's PieceToId uses.
  int32_t PieceToId(absl::string_view piece) const;
  // A normalized text cut into pieces, each with its id (unk for unknown text).
  using Segmentation = std::vector<std::pair<absl::string_view, int32_t>>;
  Segmentation SegmentBpe(absl::string_view normalized) const;
  Segmentation SegmentUnigram(absl::string_view normalized) const;
  // Appends `piece`, splitting it back into its parts while it is an UNUSED piece.
  void Resegment(
      absl::string_view piece,
      const absl::flat_hash_map<absl::string_view, std::pair<absl::string_view, absl::string_view>>&
          reverse_merges,
      std::vector<absl::string_view>* pieces) const;
  bool IsType(int32_t id, SentencePieceModel::PieceType type) const {
    return id >= 0 && id < vocab_size() && model_.pieces[id].type == type;
  }

  SentencePieceModel model_;
  std::unique_ptr<SentencePieceNormalizer> normalizer_;
  // NORMAL, USER_DEFINED and UNUSED pieces: the ones merges may produce.
  absl::flat_hash_map<std::string, int32_t> mergeable_pieces_;
  // CONTROL, UNKNOWN and BYTE pieces.
  absl::flat_hash_map<std::string, int32_t> reserved_pieces_;
  std::array<int32_t, 256> byte_ids_{};  // -1 where the byte has no <0xXX> piece.
  int32_t unk_id_ = -1;
  // Unigram: the lowest and highest NORMAL scores (the highest starts from FLT_MIN, as in
  // libsentencepiece, so with all scores negative a user-defined piece scores -0.1), and the
  // longest piece in bytes.
  float min_score_ = 0;
  float max_score_ = 0;
  size_t max_piece_bytes_ = 0;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
};

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_SENTENCEPIECE_TOKENIZER_H_
