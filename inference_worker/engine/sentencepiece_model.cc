#include "inference_worker/engine/sentencepiece_model.h"

#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace semshare {
namespace {

enum WireType : int {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kStartGroup = 3,
  kEndGroup = 4,
  kFixed32 = 5,
};

// One field of a message: its number, wire type and payload (varint/fixed value, or bytes).
struct Field {
  uint32_t number = 0;
  int wire_type = 0;
  uint64_t value = 0;
  absl::string_view bytes;
};

// Reads fields of one message in sequence. Every read is bounds-checked: a truncated or
// corrupted file must produce a DataLoss status, never a read past the buffer.
class WireReader {
 public:
  WireReader(absl::string_view data, absl::string_view message_name)
      : data_(data), message_name_(message_name) {}

  bool done() const { return pos_ >= data_.size(); }

  absl::StatusOr<Field> Next() {
    Field field;
    SEMSHARE_ASSIGN_OR_RETURN(const uint64_t tag, ReadVarint());
    field.number = static_cast<uint32_t>(tag >> 3);
    field.wire_type = static_cast<int>(tag & 7);
    if (field.number == 0) return Corrupt("field number 0");
    switch (field.wire_type) {
      case kVarint: {
        SEMSHARE_ASSIGN_OR_RETURN(field.value, ReadVarint());
        break;
      }
      case kFixed64: {
        SEMSHARE_ASSIGN_OR_RETURN(field.value, ReadFixed(8));
        break;
      }
      case kFixed32: {
        SEMSHARE_ASSIGN_OR_RETURN(field.value, ReadFixed(4));
        break;
      }
      case kLengthDelimited: {
        SEMSHARE_ASSIGN_OR_RETURN(const uint64_t length, ReadVarint());
        if (length > data_.size() - pos_) return Corrupt("length runs past the end");
        field.bytes = data_.substr(pos_, length);
        pos_ += length;
        break;
      }
      case kStartGroup:
        SEMSHARE_RETURN_IF_ERROR(SkipGroup(field.number, /*depth=*/0));
        break;
      default:
        return Corrupt(absl::StrCat("unexpected wire type ", field.wire_type));
    }
    return field;
  }

  absl::Status Corrupt(absl::string_view what) const {
    return absl::DataLossError(absl::StrCat("sentencepiece model: corrupt ", message_name_,
                                            " at byte ", pos_, ": ", what));
  }

 private:
  absl::StatusOr<uint64_t> ReadVarint() {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return Corrupt("truncated varint");
      const auto byte = static_cast<unsigned char>(data_[pos_++]);
      result |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) return result;
    }
    return Corrupt("varint longer than 10 bytes");
  }

  absl::StatusOr<uint64_t> ReadFixed(size_t width) {
    if (width > data_.size() - pos_) return Corrupt("truncated fixed-width field");
    uint64_t result = 0;
    for (size_t i = 0; i < width; ++i) {
      result |= static_cast<uint64_t>(static_cast<unsigned char>(data_[pos_ + i])) << (8 * i);
    }
    pos_ += width;
    return result;
  }

  // Groups are deprecated but legal; skip them so an unknown one cannot derail parsing.
  absl::Status SkipGroup(uint32_t number, int depth) {
    if (depth > 64) return Corrupt("groups nested too deeply");
    while (true) {
      if (done()) return Corrupt("unterminated group");
      SEMSHARE_ASSIGN_OR_RETURN(const uint64_t tag, ReadVarint());
      const auto inner_number = static_cast<uint32_t>(tag >> 3);
      const int wire_type = static_cast<int>(tag & 7);
      switch (wire_type) {
        case kVarint:
          SEMSHARE_RETURN_IF_ERROR(ReadVarint().status());
          break;
        case kFixed64:
          SEMSHARE_RETURN_IF_ERROR(ReadFixed(8).status());
          break;
        case kFixed32:
          SEMSHARE_RETURN_IF_ERROR(ReadFixed(4).status());
          break;
        case kLengthDelimited: {
          SEMSHARE_ASSIGN_OR_RETURN(const uint64_t length, ReadVarint());
          if (length > data_.size() - pos_) return Corrupt("length runs past the end");
          pos_ += length;
          break;
        }
        case kStartGroup:
          SEMSHARE_RETURN_IF_ERROR(SkipGroup(inner_number, depth + 1));
          break;
        case kEndGroup:
          if (inner_number != number) return Corrupt("mismatched end of group");
          return absl::OkStatus();
        default:
          return Corrupt(absl::StrCat("unexpected wire type ", wire_type));
      }
    }
  }

  absl::string_view data_;
  absl::string_view message_name_;
  size_t pos_ = 0;
};

absl::Status ExpectWireType(const WireReader& reader, const Field& field, int wire_type) {
  if (field.wire_type == wire_type) return absl::OkStatus();
  return reader.Corrupt(absl::StrCat("field ", field.number, " has wire type ", field.wire_type,
                                     ", expected ", wire_type));
}

// int32 fields hold negative values as 64-bit two's complement varints.
int32_t AsInt32(uint64_t value) { return static_cast<int32_t>(static_cast<int64_t>(value)); }

float AsFloat(uint64_t value) {
  const auto bits = static_cast<uint32_t>(value);
  float result;
  std::memcpy(&result, &bits, sizeof(result));
  return result;
}

absl::StatusOr<SentencePieceModel::Piece> ParsePiece(absl::string_view bytes) {
  WireReader reader(bytes, "SentencePiece");
  SentencePieceModel::Piece piece;
  while (!reader.done()) {
    SEMSHARE_ASSIGN_OR_RETURN(const Field field, reader.Next());
    switch (field.number) {
      case 1:
        SEMSHARE_RETURN_IF_ERROR(ExpectWireType(reader, field, kLengthDelimited));
        piece.piece = std::string(field.bytes);
        break;
      case 2:
        SEMSHARE_RETURN_IF_ERROR(ExpectWireType(reader, field, kFixed32));
        piece.score = AsFloat(field.value);
        break;
      case 3:
        SEMSHARE_RETURN_IF_ERROR(ExpectWireType(reader, field, kVarint));
        if (field.value < 1 || field.value > 6) {
          return absl::InvalidArgumentError(
              absl::StrCat("sentencepiece model: piece type ", field.value, " is not 1..6"));
        }
        piece.type = static_cast<SentencePieceModel::PieceType>(field.value);
        break;
      default:
        break;  // Unknown fields are skipped, as protobuf does.
    }
  }
  return piece;
}

absl::Status ParseTrainerSpec(absl::string_view bytes, SentencePieceModel* model) {
  WireReader reader(bytes, "TrainerSpec");
  while (!reader.done()) {
    SEMSHARE_ASSIGN_OR_RETURN(const Field field, reader.Next());
    int32_t* int_target = nullptr;
    bool* bool_target = nullptr;
    switch (field.number) {
      case 3:
        SEMSHARE_RETURN_IF_ERROR(ExpectWireType(reader, field, kVarint));
        if (field.value < 1 || field.value > 4) {
          return absl::InvalidArgumentError(absl::StrCat(
              "sentencepiece model: trainer_spec.model_type ", field.value, " is not 1..4"));
        }
        model->model_type = static_cast<SentencePieceModel::ModelType>(field.value);
        break;
      case 24:
        bool_target = &model->treat_whitespace_as_suffix;
        break;
      case 35:
        bool_target = &model->byte_fallback;
        break;
      case 40:
        int_target = &model->unk_id;
        break;
      case 41:
        int_target = &model->bos_id;
        break;
      case 42:
        int_target = &model->eos_id;
        break;
      case 43:
        int_target = &model->pad_id;
        break;
      case 44:
        SEMSHARE_RETURN_IF_ERROR(ExpectWireType(reader, field, kLengthDelimited));
        model->unk_surface = std::string(field.bytes);
        break;
      default:
        break;
    }
    if (int_target != nullptr || bool_target != nullptr) {
      SEMSHARE_RETURN_IF_ERROR(ExpectWireType(reader, field, kVarint));
      if (int_target != nullptr) *int_target = AsInt32(field.value);
      if (bool_target != nullptr) *bool_target = field.value != 0;
    }
  }
  return absl::OkStatus();
}

absl::Status ParseNormalizerSpec(absl::string_view bytes, SentencePieceModel* model) {
  WireReader reader(bytes, "NormalizerSpec");
  while (!reader.done()) {
    SEMSHARE_ASSIGN_OR_RETURN(const Field field, reader.Next());
    bool* bool_target = nullptr;
    switch (field.number) {
      case 1:
        SEMSHARE_RETURN_IF_ERROR(ExpectWireType(reader, field, kLengthDelimited));
        model->normalizer_name = std::string(field.bytes);
        break;
      case 2:
        SEMSHARE_RETURN_IF_ERROR(ExpectWireType(reader, field, kLengthDelimited));
        model->precompiled_charsmap = std::string(field.bytes);
        break;
      case 3:
        bool_target = &model->add_dummy_prefix;
        break;
      case 4:
        bool_target = &model->remove_extra_whitespaces;
        break;
      case 5:
        bool_target = &model->escape_whitespaces;
        break;
      default:
        break;
    }
    if (bool_target != nullptr) {
      SEMSHARE_RETURN_IF_ERROR(ExpectWireType(reader, field, kVarint));
      *bool_target = field.value != 0;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SentencePieceModel> ParseSentencePieceModel(absl::string_view serialized) {
  SentencePieceModel model;
  bool has_trainer_spec = false;
  bool has_normalizer_spec = false;
  WireReader reader(serialized, "ModelProto");
  while (!reader.done()) {
    SEMSHARE_ASSIGN_OR_RETURN(const Field field, reader.Next());
    switch (field.number) {
      case 1: {
        SEMSHARE_RETURN_IF_ERROR(ExpectWireType(reader, field, kLengthDelimited));
        SEMSHARE_ASSIGN_OR_RETURN(SentencePieceModel::Piece piece, ParsePiece(field.bytes));
        model.pieces.push_back(std::move(piece));
        break;
      }
      case 2:
        SEMSHARE_RETURN_IF_ERROR(ExpectWireType(reader, field, kLengthDelimited));
        SEMSHARE_RETURN_IF_ERROR(ParseTrainerSpec(field.bytes, &model));
        has_trainer_spec = true;
        break;
      case 3:
        SEMSHARE_RETURN_IF_ERROR(ExpectWireType(reader, field, kLengthDelimited));
        SEMSHARE_RETURN_IF_ERROR(ParseNormalizerSpec(field.bytes, &model));
        has_normalizer_spec = true;
        break;
      default:
        break;  // self_test_data, denormalizer_spec: not needed to encode or decode.
    }
  }
  if (model.pieces.empty()) {
    return absl::InvalidArgumentError("sentencepiece model: no pieces (not a tokenizer.model?)");
  }
  // The trainer writes both specs after the pieces, so a file cut at a field boundary shows up
  // here rather than as a silently smaller model.
  if (!has_trainer_spec || !has_normalizer_spec) {
    return absl::DataLossError(absl::StrCat("sentencepiece model: no ",
                                            has_trainer_spec ? "normalizer_spec" : "trainer_spec",
                                            " (truncated file?)"));
  }
  return model;
}

}  // namespace semshare
