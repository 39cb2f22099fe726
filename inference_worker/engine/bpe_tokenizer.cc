#include "inference_worker/engine/bpe_tokenizer.h"

#include <algorithm>
#include <cmath>
#include <queue>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "common/utf8.h"

namespace semshare {
namespace {

absl::Status FieldError(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", field, " ", problem));
}

// An optional bool field: absent or null gives the default.
absl::StatusOr<bool> OptionalBool(const Json& object, const std::string& key,
                                  absl::string_view path, bool default_value) {
  const Json& value = object[key];
  if (value.is_null()) return default_value;
  if (!value.is_bool()) return FieldError(absl::StrCat(path, ".", key), "must be a boolean");
  return value.bool_value();
}

// Ids index dense tables, so an id far beyond the number of tokens (a corrupt file) is
// refused instead of allocating for it.
absl::StatusOr<int32_t> TokenId(const Json& value, absl::string_view path, int64_t max_id) {
  const double number = value.number_value();
  if (!value.is_number() || number < 0 || std::floor(number) != number) {
    return FieldError(path, "must be a non-negative integer id");
  }
  if (number > static_cast<double>(max_id)) {
    return FieldError(
        path, absl::StrCat("is ", number, ", implausibly large for ", "a vocabulary of this size"));
  }
  return static_cast<int32_t>(number);
}

bool IsWordByte(unsigned char c) { return absl::ascii_isalnum(c) || c == '_' || c >= 0x80; }

}  // namespace

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Open(const std::string& path) {
  SEMSHARE_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path));
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> tokenizer = FromJson(text);
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::FromJson(absl::string_view json_text) {
  absl::StatusOr<Json> doc = ParseJson(json_text);
  if (!doc.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer.json: not valid JSON: ", doc.status().message()));
  }
  if (!doc->is_object()) return FieldError("the document", "must be a JSON object");

  std::unique_ptr<BpeTokenizer> tokenizer(new BpeTokenizer());
  const size_t entries =
      (*doc)["model"]["vocab"].object_items().size() + (*doc)["added_tokens"].array_items().size();
  tokenizer->max_id_ = 2 * static_cast<int64_t>(entries) + 1024;
  SEMSHARE_RETURN_IF_ERROR(tokenizer->ParseModel((*doc)["model"]));
  SEMSHARE_RETURN_IF_ERROR(tokenizer->ParseAddedTokens(*doc));

  const Json& normalizer = (*doc)["normalizer"];
  if (!normalizer.is_null()) {
    // Qwen2 declares NFC. Text reaching an LLM is NFC in practice, so NFC is taken as the
    // identity rather than pulling in Unicode composition tables.
    if (normalizer["type"].string_value() != "NFC") {
      return FieldError("normalizer.type", absl::StrCat("'", normalizer["type"].string_value(),
                                                        "' is not supported (only null or NFC)"));
    }
  }
  SEMSHARE_RETURN_IF_ERROR(tokenizer->ParsePreTokenizer((*doc)["pre_tokenizer"]));

  // The well-known names for the start and end of a document.
  const auto find_token = [&tokenizer](std::initializer_list<absl::string_view> names) {
    for (const absl::string_view name : names) {
      for (const AddedToken& token : tokenizer->added_tokens_) {
        if (token.content == name) return token.id;
      }
      if (const auto it = tokenizer->vocab_.find(name); it != tokenizer->vocab_.end()) {
        return it->second;
      }
    }
    return int32_t{-1};
  };
  tokenizer->bos_id_ = find_token({"<|begin_of_text|>", "<s>"});
  tokenizer->eos_id_ = find_token({"<|end_of_text|>", "</s>", "<|endoftext|>"});
  return tokenizer;
}

absl::Status BpeTokenizer::ParseModel(const Json& model) {
  if (!model.is_object()) return FieldError("model", "must be an object");
  const Json& type = model["type"];
  if (!type.is_null() && type.string_value() != "BPE") {
    return FieldError("model.type",
                      absl::StrCat("is '", type.string_value(), "'; only BPE is supported"));
  }
  SEMSHARE_ASSIGN_OR_RETURN(const bool byte_fallback,
                            OptionalBool(model, "byte_fallback", "model", false));
  if (byte_fallback) {
    return FieldError(
        "model.byte_fallback",
        "is true (a SentencePiece-style tokenizer.json); load tokenizer.model instead");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!model[key].is_null() && !model[key].string_value().empty()) {
      return FieldError(absl::StrCat("model.", key), "is not supported");
    }
  }
  if (model["dropout"].is_number() && model["dropout"].number_value() > 0) {
    return FieldError("model.dropout", "must be null or 0 for inference");
  }
  SEMSHARE_ASSIGN_OR_RETURN(ignore_merges_, OptionalBool(model, "ignore_merges", "model", false));

  const Json& vocab = model["vocab"];
  if (!vocab.is_object() || vocab.object_items().empty()) {
    return FieldError("model.vocab", "must be a non-empty object of token -> id");
  }
  vocab_.reserve(vocab.object_items().size());
  for (const auto& [token, id_value] : vocab.object_items()) {
    SEMSHARE_ASSIGN_OR_RETURN(
        const int32_t id, TokenId(id_value, absl::StrCat("model.vocab[\"", token, "\"]"), max_id_));
    vocab_.emplace(token, id);
    if (static_cast<size_t>(id) >= id_to_token_.size()) id_to_token_.resize(id + 1);
    id_to_token_[id] = token;
  }

  const Json& merges = model["merges"];
  if (!merges.is_array()) return FieldError("model.merges", "must be an array");
  merges_.reserve(merges.array_items().size());
  for (size_t rank = 0; rank < merges.array_items().size(); ++rank) {
    const Json& merge = merges.array_items()[rank];
    const std::string path = absl::StrCat("model.merges[", rank, "]");
    std::string left;
    std::string right;
    if (merge.is_string()) {  // "a b"; byte-level tokens never contain ' '.
      const std::string& text = merge.string_value();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        return FieldError(path, "must be two tokens separated by one space");
      }
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (merge.is_array() && merge.array_items().size() == 2 &&
               merge.array_items()[0].is_string() && merge.array_items()[1].is_string()) {
      left = merge.array_items()[0].string_value();
      right = merge.array_items()[1].string_value();
    } else {
      return FieldError(path, "must be \"a b\" or [\"a\", \"b\"]");
    }
    const auto left_it = vocab_.find(left);
    const auto right_it = vocab_.find(right);
    const auto merged_it = vocab_.find(left + right);
    if (left_it == vocab_.end() || right_it == vocab_.end() || merged_it == vocab_.end()) {
      return FieldError(path, "uses a token that is not in model.vocab");
    }
    const uint64_t key =
        (static_cast<uint64_t>(left_it->second) << 32) | static_cast<uint32_t>(right_it->second);
    // The first (lowest-rank) occurrence of a pair wins, as in Hugging Face.
    merges_.try_emplace(key, Merge{static_cast<int32_t>(rank), merged_it->second});
  }

  const Json& unk = model["unk_token"];
  if (unk.is_string()) {
    const auto it = vocab_.find(unk.string_value());
    if (it == vocab_.end()) return FieldError("model.unk_token", "is not in model.vocab");
    unk_id_ = it->second;
  }
  return absl::OkStatus();
}

absl::Status BpeTokenizer::ParseAddedTokens(const Json& doc) {
  const Json& added = doc["added_tokens"];
  if (added.is_null()) return absl::OkStatus();
  if (!added.is_array()) return FieldError("added_tokens", "must be an array");
  for (size_t i = 0; i < added.array_items().size(); ++i) {
    const Json& entry = added.array_items()[i];
    const std::string path = absl::StrCat("added_tokens[", i, "]");
    if (!entry.is_object()) return FieldError(path, "must be an object");
    AddedToken token;
    SEMSHARE_ASSIGN_OR_RETURN(token.id, TokenId(entry["id"], absl::StrCat(path, ".id"), max_id_));
    if (!entry["content"].is_string() || entry["content"].string_value().empty()) {
      return FieldError(absl::StrCat(path, ".content"), "must be a non-empty string");
    }
    token.content = entry["content"].string_value();
    SEMSHARE_ASSIGN_OR_RETURN(token.special, OptionalBool(entry, "special", path, false));
    SEMSHARE_ASSIGN_OR_RETURN(token.single_word, OptionalBool(entry, "single_word", path, false));
    SEMSHARE_ASSIGN_OR_RETURN(token.lstrip, OptionalBool(entry, "lstrip", path, false));
    SEMSHARE_ASSIGN_OR_RETURN(token.rstrip, OptionalBool(entry, "rstrip", path, false));
    if (static_cast<size_t>(token.id) >= id_to_token_.size()) id_to_token_.resize(token.id + 1);
    id_to_token_[token.id] = token.content;
    added_tokens_.push_back(std::move(token));
  }
  id_is_special_.assign(id_to_token_.size(), 0);
  for (size_t i = 0; i < added_tokens_.size(); ++i) {
    const AddedToken& token = added_tokens_[i];
    id_is_special_[token.id] = token.special ? 1 : 0;
    added_by_first_byte_[static_cast<unsigned char>(token.content[0])].push_back(
        static_cast<int>(i));
  }
  for (auto& candidates : added_by_first_byte_) {
    std::stable_sort(candidates.begin(), candidates.end(), [this](int a, int b) {
      return added_tokens_[a].content.size() > added_tokens_[b].content.size();
    });
  }
  return absl::OkStatus();
}

absl::Status BpeTokenizer::ParsePreTokenizer(const Json& pre_tokenizer) {
  if (!pre_tokenizer.is_object()) {
    return FieldError("pre_tokenizer", "must be an object (byte-level BPE needs ByteLevel)");
  }
  std::vector<std::pair<const Json*, std::string>> steps;
  if (pre_tokenizer["type"].string_value() == "Sequence") {
    const Json& list = pre_tokenizer["pretokenizers"];
    if (!list.is_array()) return FieldError("pre_tokenizer.pretokenizers", "must be an array");
    for (size_t i = 0; i < list.array_items().size(); ++i) {
      steps.emplace_back(&list.array_items()[i],
                         absl::StrCat("pre_tokenizer.pretokenizers[", i, "]"));
    }
  } else {
    steps.emplace_back(&pre_tokenizer, "pre_tokenizer");
  }
  bool has_byte_level = false;
  for (const auto& [step_json, path] : steps) {
    const Json& step = *step_json;
    const std::string& type = step["type"].string_value();
    PreTokenizerStep parsed;
    if (type == "ByteLevel") {
      parsed.is_byte_level = true;
      SEMSHARE_ASSIGN_OR_RETURN(parsed.use_regex, OptionalBool(step, "use_regex", path, true));
      SEMSHARE_ASSIGN_OR_RETURN(parsed.add_prefix_space,
                                OptionalBool(step, "add_prefix_space", path, true));
      parsed.pattern = PreTokenizerPattern::kGpt2;
      has_byte_level = true;
    } else if (type == "Split") {
      const Json& regex = step["pattern"]["Regex"];
      if (!regex.is_string()) {
        return FieldError(absl::StrCat(path, ".pattern"), "must be {\"Regex\": ...}");
      }
      absl::StatusOr<PreTokenizerPattern> pattern =
          RecognizePreTokenizerPattern(regex.string_value());
      if (!pattern.ok())
        return FieldError(absl::StrCat(path, ".pattern"), pattern.status().message());
      parsed.pattern = *pattern;
      if (step["behavior"].string_value() != "Isolated") {
        return FieldError(absl::StrCat(path, ".behavior"), "must be \"Isolated\"");
      }
      SEMSHARE_ASSIGN_OR_RETURN(const bool invert, OptionalBool(step, "invert", path, false));
      if (invert) return FieldError(absl::StrCat(path, ".invert"), "must be false");
    } else {
      return FieldError(absl::StrCat(path, ".type"),
                        absl::StrCat("'", type, "' is not supported (ByteLevel, Split, Sequence)"));
    }
    pre_tokenizer_.push_back(parsed);
  }
  if (!has_byte_level) {
    return FieldError("pre_tokenizer", "has no ByteLevel step; only byte-level BPE is supported");
  }
  return absl::OkStatus();
}

const BpeTokenizer::Merge* BpeTokenizer::FindMerge(int32_t left, int32_t right) const {
  const uint64_t key = (static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right);
  const auto it = merges_.find(key);
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeTokenizer::EncodeWord(absl::string_view mapped, std::vector<int32_t>* ids) const {
  if (ignore_merges_) {
    if (const auto it = vocab_.find(mapped); it != vocab_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  struct Symbol {
    int32_t id;
    int prev;
    int next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(mapped.size());
  for (size_t pos = 0; pos < mapped.size();) {
    char32_t code_point;
    int length;
    DecodeUtf8Char(mapped.substr(pos), &code_point, &length);
    const auto it = vocab_.find(mapped.substr(pos, static_cast<size_t>(length)));
    pos += static_cast<size_t>(length);
    // Hugging Face drops characters it cannot represent when there is no unk token.
    const int32_t id = it != vocab_.end() ? it->second : unk_id_;
    if (id < 0) continue;
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, true});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    int32_t rank;
    int pos;
    int32_t new_id;
  };
  // Lowest rank first, then leftmost.
  const auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.pos > b.pos);
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> queue(later);
  const auto push_pair = [&](int left) {
    if (left < 0 || symbols[left].next < 0) return;
    if (const Merge* merge = FindMerge(symbols[left].id, symbols[symbols[left].next].id)) {
      queue.push({merge->rank, left, merge->new_id});
    }
  };
  for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) push_pair(i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Stale entries are recognised the way Hugging Face does: the pair now at this position
    // must still merge into the same token.
    const Merge* merge = FindMerge(left.id, right.id);
    if (merge == nullptr || merge->new_id != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    push_pair(left.prev);
    push_pair(top.pos);
  }
  for (int i = 0; i >= 0; i = symbols[i].next) ids->push_back(symbols[i].id);
}

void BpeTokenizer::EncodeOrdinary(absl::string_view text, std::vector<int32_t>* ids) const {
  if (text.empty()) return;
  std::vector<std::string> pieces = {std::string(text)};
  std::vector<std::string> next;
  std::vector<absl::string_view> split;
  for (const PreTokenizerStep& step : pre_tokenizer_) {
    next.clear();
    for (std::string& piece : pieces) {
      if (step.is_byte_level && step.add_prefix_space && !absl::StartsWith(piece, " ")) {
        piece.insert(0, " ");
      }
      if (step.is_byte_level && !step.use_regex) {
        next.push_back(std::move(piece));
        continue;
      }
      split.clear();
      SplitPreTokens(piece, step.pattern, &split);
      for (const absl::string_view part : split) next.emplace_back(part);
    }
    pieces.swap(next);
  }
  const std::array<std::string, 256>& alphabet = ByteLevelAlphabet();
  std::string mapped;
  for (const std::string& piece : pieces) {
    mapped.clear();
    for (const char c : piece) mapped.append(alphabet[static_cast<unsigned char>(c)]);
    EncodeWord(mapped, ids);
  }
}

absl::StatusOr<std::vector<int32_t>> BpeTokenizer::Encode(absl::string_view text) const {
  std::vector<int32_t> ids;
  size_t segment_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const AddedToken* match = nullptr;
    for (const int index : added_by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      if (absl::StartsWith(text.substr(pos), added_tokens_[index].content)) {
        match = &added_tokens_[index];
        break;
      }
    }
    if (match == nullptr) {
      ++pos;
      continue;
    }
    size_t start = pos;
    size_t end = pos + match->content.size();
    if (match->single_word &&
        ((start > 0 && IsWordByte(static_cast<unsigned char>(text[start - 1]))) ||
         (end < text.size() && IsWordByte(static_cast<unsigned char>(text[end]))))) {
      pos = end;  // Not a whole word: the text stays ordinary text.
      continue;
    }
    if (match->lstrip) {
      while (start > segment_start &&
             absl::ascii_isspace(static_cast<unsigned char>(text[start - 1]))) {
        --start;
      }
    }
    if (match->rstrip) {
      while (end < text.size() && absl::ascii_isspace(static_cast<unsigned char>(text[end]))) ++end;
    }
    EncodeOrdinary(text.substr(segment_start, start - segment_start), &ids);
    ids.push_back(match->id);
    segment_start = pos = end;
  }
  EncodeOrdinary(text.substr(segment_start), &ids);
  return ids;
}

std::string BpeTokenizer::Decode(absl::Span<const int32_t> ids) const {
  std::string bytes;
  std::string token_bytes;
  for (const int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    const auto index = static_cast<size_t>(id);
    if (index < id_is_special_.size() && id_is_special_[index]) continue;
    // As Hugging Face's ByteLevel decoder: a token whose characters all come from the byte
    // alphabet becomes those bytes, any other token its own UTF-8.
    const std::string& token = id_to_token_[index];
    absl::string_view rest(token);
    token_bytes.clear();
    bool all_mapped = true;
    while (!rest.empty() && all_mapped) {
      char32_t code_point;
      int length;
      const int byte =
          DecodeUtf8Char(rest, &code_point, &length) ? ByteLevelCharToByte(code_point) : -1;
      all_mapped = byte >= 0;
      token_bytes.push_back(static_cast<char>(byte));
      rest.remove_prefix(static_cast<size_t>(length));
    }
    bytes.append(all_mapped ? token_bytes : token);
  }
  std::string out;
  AppendUtf8Lossy(bytes, &out);
  return out;
}

}  // namespace semshare
