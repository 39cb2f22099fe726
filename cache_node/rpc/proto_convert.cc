#include "cache_node/rpc/proto_convert.h"

#include "absl/strings/str_cat.h"

namespace semshare::cache_node {

v1::DType DTypeToProto(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return v1::DTYPE_FLOAT32;
    case DType::kFloat16:
      return v1::DTYPE_FLOAT16;
    case DType::kBFloat16:
      return v1::DTYPE_BFLOAT16;
  }
  return v1::DTYPE_UNSPECIFIED;
}

absl::StatusOr<DType> DTypeFromProto(v1::DType dtype) {
  switch (dtype) {
    case v1::DTYPE_FLOAT32:
      return DType::kFloat32;
    case v1::DTYPE_FLOAT16:
      return DType::kFloat16;
    case v1::DTYPE_BFLOAT16:
      return DType::kBFloat16;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown dtype ", static_cast<int>(dtype)));
  }
}

void TokenCodesToProto(const TokenCodes& codes, v1::TokenCodes* out) {
  out->set_nbits(codes.nbits);
  out->mutable_words()->Assign(codes.words.begin(), codes.words.end());
}

TokenCodes TokenCodesFromProto(const v1::TokenCodes& codes) {
  TokenCodes out;
  out.nbits = codes.nbits();
  out.words.assign(codes.words().begin(), codes.words().end());
  return out;
}

void TokenMappingToProto(const TokenMapping& mapping, v1::TokenMapping* out) {
  out->set_similarity(mapping.similarity);
  out->mutable_source()->Assign(mapping.source.begin(), mapping.source.end());
  out->mutable_distance()->Assign(mapping.distance.begin(), mapping.distance.end());
  for (size_t i = 0; i < mapping.unmatched.size(); ++i) {
    if (mapping.unmatched[i]) out->add_unmatched(static_cast<int32_t>(i));
  }
}

absl::StatusOr<TokenMapping> TokenMappingFromProto(const v1::TokenMapping& mapping) {
  TokenMapping out;
  out.similarity = mapping.similarity();
  out.source.assign(mapping.source().begin(), mapping.source().end());
  out.distance.assign(mapping.distance().begin(), mapping.distance().end());
  if (out.distance.size() != out.source.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token mapping: ", out.source.size(), " sources but ", out.distance.size(), " distances"));
  }
  out.unmatched.assign(out.source.size(), 0);
  for (int32_t index : mapping.unmatched()) {
    if (index < 0 || static_cast<size_t>(index) >= out.source.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token mapping: unmatched index ", index, " out of range"));
    }
    if (!out.unmatched[index]) ++out.num_unmatched;
    out.unmatched[index] = 1;
  }
  return out;
}

void FindResultToProto(const FindResult& result, v1::FindSimilarResponse* out) {
  for (const Match& match : result.matches) {
    v1::Match* m = out->add_matches();
    m->set_reference_id(match.reference_id);
    m->set_similarity(match.similarity);
    m->set_num_tokens(match.num_tokens);
  }
  if (!result.matches.empty())
    TokenMappingToProto(result.best_mapping, out->mutable_best_mapping());
}

absl::StatusOr<FindResult> FindResultFromProto(const v1::FindSimilarResponse& response) {
  FindResult out;
  for (const v1::Match& m : response.matches()) {
    out.matches.push_back(Match{m.reference_id(), m.similarity(), m.num_tokens()});
  }
  if (!out.matches.empty()) {
    absl::StatusOr<TokenMapping> mapping = TokenMappingFromProto(response.best_mapping());
    if (!mapping.ok()) return mapping.status();
    out.best_mapping = std::move(mapping).value();
  }
  return out;
}

void ReferenceInfoToProto(const ReferenceInfo& info, v1::ReferenceInfo* out) {
  out->set_reference_id(info.reference_id);
  out->set_num_tokens(info.num_tokens);
  out->set_num_layers(info.num_layers);
  out->set_bytes(info.bytes);
  out->set_created_unix_ms(info.created_unix_ms);
  out->set_last_used_unix_ms(info.last_used_unix_ms);
}

ReferenceInfo ReferenceInfoFromProto(const v1::ReferenceInfo& info) {
  ReferenceInfo out;
  out.reference_id = info.reference_id();
  out.num_tokens = info.num_tokens();
  out.num_layers = info.num_layers();
  out.bytes = info.bytes();
  out.created_unix_ms = info.created_unix_ms();
  out.last_used_unix_ms = info.last_used_unix_ms();
  return out;
}

std::vector<std::vector<int32_t>> TokenSubsetsFromProto(const v1::FetchKVRequest& request) {
  std::vector<std::vector<int32_t>> subsets;
  subsets.reserve(request.token_subsets_size());
  for (const v1::TokenSubset& subset : request.token_subsets()) {
    subsets.emplace_back(subset.target_tokens().begin(), subset.target_tokens().end());
  }
  return subsets;
}

}  // namespace semshare::cache_node
