#include "inference_worker/engine/sentencepiece_tokenizer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/utf8.h"

namespace semshare {
namespace {

using PieceType = SentencePieceModel::PieceType;

constexpr absl::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581, "▁".

// "<0x0A>" -> 10; -1 when the piece is not a byte piece.
int PieceToByte(absl::string_view piece) {
  if (piece.size() != 6 || !absl::StartsWith(piece, "<0x") || piece[5] != '>') return -1;
  int value = 0;
  for (const char c : piece.substr(3, 2)) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return -1;
    value = value * 16 + (absl::ascii_isdigit(static_cast<unsigned char>(c))
                              ? c - '0'
                              : absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10);
  }
  return value;
}

// Bytes in one UTF-8 character judged by its lead byte alone, like sentencepiece's
// OneCharLen: the normalizer already replaced invalid sequences.
size_t OneCharLength(absl::string_view text) {
  static constexpr unsigned char kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return std::min<size_t>(text.size(), kLengths[static_cast<unsigned char>(text[0]) >> 4]);
}

const char* ModelTypeName(SentencePieceModel::ModelType type) {
  switch (type) {
    case SentencePieceModel::ModelType::kUnigram:
      return "UNIGRAM";
    case SentencePieceModel::ModelType::kBpe:
      return "BPE";
    case SentencePieceModel::ModelType::kWord:
      return "WORD";
    case SentencePieceModel::ModelType::kChar:
      return "CHAR";
  }
  return "?";
}

// Appends byte-fallback bytes as UTF-8, one U+FFFD per byte that does not start a valid
// character -- what libsentencepiece's Decode does.
void FlushBytes(std::string* bytes, std::string* out) {
  absl::string_view rest(*bytes);
  while (!rest.empty()) {
    char32_t code_point;
    int length;
    if (DecodeUtf8Char(rest, &code_point, &length)) {
      out->append(rest.data(), static_cast<size_t>(length));
    } else {
      out->append(kUtf8ReplacementChar.data(), kUtf8ReplacementChar.size());
    }
    rest.remove_prefix(static_cast<size_t>(length));
  }
  bytes->clear();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::Open(
    const std::string& path) {
  SEMSHARE_ASSIGN_OR_RETURN(const std::string serialized, ReadFileToString(path));
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
      FromSerializedProto(serialized);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::FromSerializedProto(
    absl::string_view serialized) {
  SEMSHARE_ASSIGN_OR_RETURN(SentencePieceModel model, ParseSentencePieceModel(serialized));
  if (model.model_type != SentencePieceModel::ModelType::kBpe &&
      model.model_type != SentencePieceModel::ModelType::kUnigram) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sentencepiece model: trainer_spec.model_type is ", ModelTypeName(model.model_type),
        "; only BPE and UNIGRAM models are supported"));
  }
  if (model.treat_whitespace_as_suffix) {
    return absl::InvalidArgumentError(
        "sentencepiece model: trainer_spec.treat_whitespace_as_suffix is not supported");
  }

  std::unique_ptr<SentencePieceTokenizer> tokenizer(new SentencePieceTokenizer());
  tokenizer->byte_ids_.fill(-1);
  tokenizer->min_score_ = std::numeric_limits<float>::max();
  tokenizer->max_score_ = std::numeric_limits<float>::min();  // the smallest positive float
  std::vector<std::string> user_defined_symbols;
  for (size_t i = 0; i < model.pieces.size(); ++i) {
    const SentencePieceModel::Piece& piece = model.pieces[i];
    const auto id = static_cast<int32_t>(i);
    if (piece.piece.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sentencepiece model: piece ", id, " is empty"));
    }
    // NaN would break the merge queue's ordering.
    if (std::isnan(piece.score)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sentencepiece model: piece ", id, " has a NaN score"));
    }
    const bool mergeable = piece.type == PieceType::kNormal ||
                           piece.type == PieceType::kUserDefined ||
                           piece.type == PieceType::kUnused;
    auto& map = mergeable ? tokenizer->mergeable_pieces_ : tokenizer->reserved_pieces_;
    if (!map.emplace(piece.piece, id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("sentencepiece model: piece '", piece.piece, "' is defined twice"));
    }
    if (piece.type == PieceType::kUserDefined) user_defined_symbols.push_back(piece.piece);
    if (piece.type == PieceType::kNormal) {
      tokenizer->min_score_ = std::min(tokenizer->min_score_, piece.score);
      tokenizer->max_score_ = std::max(tokenizer->max_score_, piece.score);
    }
    if (mergeable)
      tokenizer->max_piece_bytes_ = std::max(tokenizer->max_piece_bytes_, piece.piece.size());
    if (piece.type == PieceType::kUnknown) {
      if (tokenizer->unk_id_ >= 0) {
        return absl::InvalidArgumentError("sentencepiece model: more than one unknown piece");
      }
      tokenizer->unk_id_ = id;
    }
    if (piece.type == PieceType::kByte) {
      if (!model.byte_fallback) {
        return absl::InvalidArgumentError(absl::StrCat("sentencepiece model: byte piece '",
                                                       piece.piece,
                                                       "' but trainer_spec.byte_fallback is off"));
      }
      const int byte = PieceToByte(piece.piece);
      if (byte < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("sentencepiece model: malformed byte piece '", piece.piece, "'"));
      }
      tokenizer->byte_ids_[byte] = id;
    }
  }
  if (tokenizer->unk_id_ < 0) {
    return absl::InvalidArgumentError("sentencepiece model: no piece has type UNKNOWN");
  }

  SentencePieceNormalizer::Options options;
  options.add_dummy_prefix = model.add_dummy_prefix;
  options.remove_extra_whitespaces = model.remove_extra_whitespaces;
  options.escape_whitespaces = model.escape_whitespaces;
  SEMSHARE_ASSIGN_OR_RETURN(
      tokenizer->normalizer_,
      SentencePieceNormalizer::Create(model.precompiled_charsmap, options, user_defined_symbols));

  const auto in_range = [&model](int32_t id) {
    return id >= 0 && static_cast<size_t>(id) < model.pieces.size() ? id : -1;
  };
  tokenizer->bos_id_ = in_range(model.bos_id);
  tokenizer->eos_id_ = in_range(model.eos_id);
  tokenizer->model_ = std::move(model);
  return tokenizer;
}

absl::string_view SentencePieceTokenizer::IdToPiece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return "";
  return model_.pieces[id].piece;
}

int32_t SentencePieceTokenizer::PieceToId(absl::string_view piece) const {
  if (auto it = reserved_pieces_.find(piece); it != reserved_pieces_.end()) return it->second;
  if (auto it = mergeable_pieces_.find(piece); it != mergeable_pieces_.end()) return it->second;
  return unk_id_;
}

void SentencePieceTokenizer::Resegment(
    absl::string_view piece,
    const absl::flat_hash_map<absl::string_view, std::pair<absl::string_view, absl::string_view>>&
        reverse_merges,
    std::vector<absl::string_view>* pieces) const {
  if (!IsType(PieceToId(piece), PieceType::kUnused)) {
    pieces->push_back(piece);
    return;
  }
  const auto it = reverse_merges.find(piece);
  if (it == reverse_merges.end()) {
    pieces->push_back(piece);
    return;
  }
  Resegment(it->second.first, reverse_merges, pieces);
  Resegment(it->second.second, reverse_merges, pieces);
}

SentencePieceTokenizer::Segmentation SentencePieceTokenizer::SegmentBpe(
    absl::string_view normalized_view) const {
  // Symbols form a doubly linked list over `normalized`; a merge grows the left symbol and
  // empties the right one, so stale queue entries are recognised by their size.
  struct Symbol {
    int prev;
    int next;
    size_t begin;
    size_t length;
    bool frozen;  // User-defined symbols never merge.
  };
  std::vector<Symbol> symbols;
  symbols.reserve(normalized_view.size());
  for (size_t pos = 0; pos < normalized_view.size();) {
    const absl::string_view rest = normalized_view.substr(pos);
    size_t length = normalizer_->MatchUserDefinedSymbol(rest);
    const bool frozen = length > 0;
    if (!frozen) length = OneCharLength(rest);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back(
        {index - 1, pos + length < normalized_view.size() ? index + 1 : -1, pos, length, frozen});
    pos += length;
  }

  struct Pair {
    float score;
    int left;
    int right;
    size_t length;
  };
  // Highest score first; among equal scores the leftmost pair.
  const auto lower_priority = [](const Pair& a, const Pair& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Pair, std::vector<Pair>, decltype(lower_priority)> agenda(lower_priority);
  absl::flat_hash_map<absl::string_view, std::pair<absl::string_view, absl::string_view>>
      reverse_merges;

  const auto maybe_add_pair = [&](int left, int right) {
    if (left < 0 || right < 0 || symbols[left].frozen || symbols[right].frozen) return;
    const absl::string_view merged =
        normalized_view.substr(symbols[left].begin, symbols[left].length + symbols[right].length);
    const auto it = mergeable_pieces_.find(merged);
    if (it == mergeable_pieces_.end()) return;
    agenda.push({model_.pieces[it->second].score, left, right, merged.size()});
    // An UNUSED piece may be formed but never emitted: remember how to split it again.
    if (model_.pieces[it->second].type == PieceType::kUnused) {
      reverse_merges[merged] = {
          normalized_view.substr(symbols[left].begin, symbols[left].length),
          normalized_view.substr(symbols[right].begin, symbols[right].length)};
    }
  };

  for (size_t i = 1; i < symbols.size(); ++i) maybe_add_pair(static_cast<int>(i) - 1, i);

  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.length == 0 || right.length == 0 || left.length + right.length != top.length) {
      continue;  // One side was merged into something else since this pair was queued.
    }
    left.length += right.length;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.length = 0;
    maybe_add_pair(left.prev, top.left);
    maybe_add_pair(top.left, left.next);
  }

  std::vector<absl::string_view> pieces;
  for (int index = 0; index != -1; index = symbols[index].next) {
    Resegment(normalized_view.substr(symbols[index].begin, symbols[index].length), reverse_merges,
              &pieces);
  }
  Segmentation segmentation;
  segmentation.reserve(pieces.size());
  for (const absl::string_view piece : pieces) segmentation.emplace_back(piece, PieceToId(piece));
  return segmentation;
}

SentencePieceTokenizer::Segmentation SentencePieceTokenizer::SegmentUnigram(
    absl::string_view normalized) const {
  // libsentencepiece's EncodeOptimized: best[e] is the best path over the first e bytes; every
  // piece starting at a reachable character boundary extends it, and a character no
  // single-character piece covers becomes an unknown node. A candidate replaces the best only
  // when strictly better, so ties keep the path found first (the earliest start). The scores
  // are summed in double and stored in float, as there.
  constexpr float kUnkPenalty = 10.0F;
  struct Node {
    int32_t id = -1;
    float score = 0;
    int64_t starts_at = -1;
  };
  const size_t size = normalized.size();
  const float unk_score = min_score_ - kUnkPenalty;
  std::vector<Node> best(size + 1);
  const auto offer = [&best](size_t end, size_t start, int32_t id, double score) {
    Node& node = best[end];
    if (node.starts_at == -1 || score > node.score) {
      node = {id, static_cast<float>(score), static_cast<int64_t>(start)};
    }
  };
  for (size_t start = 0; start < size;) {
    const float here = best[start].score;
    const size_t char_length = OneCharLength(normalized.substr(start));
    bool has_single_character = false;
    const size_t longest = std::min(size - start, max_piece_bytes_);
    for (size_t length = 1; length <= longest; ++length) {
      const auto it = mergeable_pieces_.find(normalized.substr(start, length));
      if (it == mergeable_pieces_.end()) continue;
      const SentencePieceModel::Piece& piece = model_.pieces[it->second];
      if (piece.type == PieceType::kUnused) continue;
      // User-defined pieces get a bonus so that they are always chosen.
      const double score = piece.type == PieceType::kUserDefined
                               ? static_cast<float>(length) * max_score_ - 0.1
                               : static_cast<double>(piece.score);
      offer(start + length, start, it->second, score + here);
      has_single_character = has_single_character || length == char_length;
    }
    if (!has_single_character) offer(start + char_length, start, unk_id_, unk_score + here);
    start += char_length;
  }
  Segmentation segmentation;
  for (size_t end = size; end > 0;) {
    const Node& node = best[end];
    const auto start = static_cast<size_t>(node.starts_at);
    segmentation.emplace_back(normalized.substr(start, end - start), node.id);
    end = start;
  }
  std::reverse(segmentation.begin(), segmentation.end());
  return segmentation;
}

absl::StatusOr<std::vector<int32_t>> SentencePieceTokenizer::Encode(absl::string_view text) const {
  const std::string normalized = normalizer_->Normalize(text);
  std::vector<int32_t> ids;
  if (normalized.empty()) return ids;
  const Segmentation pieces = model_.model_type == SentencePieceModel::ModelType::kUnigram
                                  ? SegmentUnigram(normalized)
                                  : SegmentBpe(normalized);
  ids.reserve(pieces.size());
  bool previous_is_unk = false;
  for (const auto& [piece, id] : pieces) {
    const bool is_unk = id == unk_id_;
    if (is_unk && model_.byte_fallback) {
      for (const char c : piece) {
        const int32_t byte_id = byte_ids_[static_cast<unsigned char>(c)];
        ids.push_back(byte_id >= 0 ? byte_id : unk_id_);
      }
    } else if (!(is_unk && previous_is_unk)) {  // A run of unknown pieces is one <unk>.
      ids.push_back(id);
    }
    previous_is_unk = is_unk;
  }
  return ids;
}

std::string SentencePieceTokenizer::Decode(absl::Span<const int32_t> ids) const {
  std::string out;
  std::string pending_bytes;
  // The dummy prefix comes back as a leading "▁" on the first piece; it is dropped once (or,
  // when extra whitespace was removed at encode time, from every piece before any text).
  bool at_start = true;
  bool dummy_prefix_dropped = false;
  const bool strip_dummy_prefix = model_.add_dummy_prefix || model_.remove_extra_whitespaces;
  for (const int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    const SentencePieceModel::Piece& piece = model_.pieces[id];
    if (piece.type == PieceType::kByte) {
      pending_bytes.push_back(static_cast<char>(PieceToByte(piece.piece)));
      continue;
    }
    FlushBytes(&pending_bytes, &out);
    if (dummy_prefix_dropped || !out.empty()) at_start = false;
    dummy_prefix_dropped = false;
    if (piece.type == PieceType::kControl) continue;
    if (piece.type == PieceType::kUnknown) {
      out.append(model_.unk_surface);
      continue;
    }
    absl::string_view text(piece.piece);
    if (at_start && strip_dummy_prefix) {
      dummy_prefix_dropped =
          absl::ConsumePrefix(&text, kSpaceSymbol) && !model_.remove_extra_whitespaces;
    }
    out.append(absl::StrReplaceAll(text, {{kSpaceSymbol, " "}}));
  }
  FlushBytes(&pending_bytes, &out);
  return out;
}

}  // namespace semshare
