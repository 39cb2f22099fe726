#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_SENTENCEPIECE_MODEL_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_SENTENCEPIECE_MODEL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace semshare {

// The parts of sentencepiece's ModelProto (sentencepiece_model.proto) that encoding and
// decoding need, read from the protobuf wire format by hand so the engine needs neither
// libsentencepiece nor libprotobuf. Defaults are the .proto's defaults.
struct SentencePieceModel {
  enum class PieceType : int {
    kNormal = 1,
    kUnknown = 2,
    kControl = 3,
    kUserDefined = 4,
    kUnused = 5,
    kByte = 6,
  };
  enum class ModelType : int { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };

  struct Piece {
    std::string piece;
    float score = 0.0f;
    PieceType type = PieceType::kNormal;
  };

  std::vector<Piece> pieces;  // Index is the token id.

  // TrainerSpec (ModelProto field 2).
  ModelType model_type = ModelType::kUnigram;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  int32_t unk_id = 0;
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  int32_t pad_id = -1;
  std::string unk_surface = " \xE2\x81\x87 ";  // What an <unk> decodes to: " ⁇ ".

  // NormalizerSpec (ModelProto field 3).
  std::string normalizer_name;
  std::string precompiled_charsmap;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

// Parses a serialized ModelProto. DataLoss for truncated or malformed wire data,
// InvalidArgument for well-formed data that is not a usable model (no pieces, bad types).
absl::StatusOr<SentencePieceModel> ParseSentencePieceModel(absl::string_view serialized);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_SENTENCEPIECE_MODEL_H_
