#ifndef SEMSHARE_CACHE_NODE_REFERENCE_KEY_H_
#define SEMSHARE_CACHE_NODE_REFERENCE_KEY_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cache_node/cache_node.h"

// Storage keys. Every component is length-prefixed, so one tenant's (or model's) prefix is
// never a prefix of another's: "ab"+"c" and "a"+"bc" encode differently, and no reference
// id can be chosen to reach into another scope.
namespace semshare::cache_node {

enum class KvPart : uint8_t { kKey = 'K', kValue = 'V' };

// tenant, model fingerprint (each varint length + bytes).
std::string ScopePrefix(const ReferenceScope& scope);
// ScopePrefix + reference id (varint length + bytes): the key in `meta` and `codes`.
std::string ReferenceKey(const ReferenceScope& scope, absl::string_view reference_id);
// ReferenceKey + big-endian layer + part: the key of one KV blob in `kv`.
std::string KvKey(absl::string_view reference_key, int32_t layer, KvPart part);
// ReferenceKey + a marker past every layer: the prompt's token ids, in `kv`.
std::string TokenIdsKey(absl::string_view reference_key);

struct DecodedReferenceKey {
  ReferenceScope scope;
  std::string reference_id;
};
// InvalidArgument unless `key` is exactly a ReferenceKey.
absl::StatusOr<DecodedReferenceKey> DecodeReferenceKey(absl::string_view key);

}  // namespace semshare::cache_node

#endif  // SEMSHARE_CACHE_NODE_REFERENCE_KEY_H_
