#ifndef SEMSHARE_CACHE_NODE_RPC_PROTO_CONVERT_H_
#define SEMSHARE_CACHE_NODE_RPC_PROTO_CONVERT_H_

#include <vector>

#include "absl/status/statusor.h"
#include "cache_node/cache_node.h"
#include "common/tensor_blob.h"
#include "common/token_mapping.h"
#include "semshare/v1/cache_node.pb.h"
#include "semshare/v1/common.pb.h"

// Field-by-field translation between the semshare.v1 messages and the domain types of
// cache_node/cache_node.h. Checks only what the types themselves need (a known dtype);
// semantic validation is the domain's.
namespace semshare::cache_node {

v1::DType DTypeToProto(DType dtype);
absl::StatusOr<DType> DTypeFromProto(v1::DType dtype);

void TokenCodesToProto(const TokenCodes& codes, v1::TokenCodes* out);
TokenCodes TokenCodesFromProto(const v1::TokenCodes& codes);

void TokenMappingToProto(const TokenMapping& mapping, v1::TokenMapping* out);
// InvalidArgument when the lists disagree in length or an unmatched index is out of range.
absl::StatusOr<TokenMapping> TokenMappingFromProto(const v1::TokenMapping& mapping);

void FindResultToProto(const FindResult& result, v1::FindSimilarResponse* out);
absl::StatusOr<FindResult> FindResultFromProto(const v1::FindSimilarResponse& response);

void ReferenceInfoToProto(const ReferenceInfo& info, v1::ReferenceInfo* out);
ReferenceInfo ReferenceInfoFromProto(const v1::ReferenceInfo& info);

std::vector<std::vector<int32_t>> TokenSubsetsFromProto(const v1::FetchKVRequest& request);

}  // namespace semshare::cache_node

#endif  // SEMSHARE_CACHE_NODE_RPC_PROTO_CONVERT_H_
