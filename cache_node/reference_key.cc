#include "cache_node/reference_key.h"

#include "absl/status/status.h"

namespace semshare::cache_node {
namespace {

constexpr uint32_t kTokenIdsLayer = 0xffffffffu;

void AppendComponent(std::string* out, absl::string_view part) {
  uint64_t n = part.size();
  while (n >= 0x80) {
    out->push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  out->push_back(static_cast<char>(n));
  out->append(part.data(), part.size());
}

bool ReadComponent(absl::string_view* in, std::string* part) {
  uint64_t n = 0;
  for (int shift = 0;; shift += 7) {
    if (in->empty() || shift > 28) return false;
    const auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    n |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) break;
  }
  if (in->size() < n) return false;
  part->assign(in->data(), n);
  in->remove_prefix(n);
  return true;
}

}  // namespace

std::string ScopePrefix(const ReferenceScope& scope) {
  std::string key;
  AppendComponent(&key, scope.tenant);
  AppendComponent(&key, scope.model_fingerprint);
  return key;
}

std::string ReferenceKey(const ReferenceScope& scope, absl::string_view reference_id) {
  std::string key = ScopePrefix(scope);
  AppendComponent(&key, reference_id);
  return key;
}

std::string KvKey(absl::string_view reference_key, int32_t layer, KvPart part) {
  std::string key(reference_key);
  const auto l = static_cast<uint32_t>(layer);
  for (int shift = 24; shift >= 0; shift -= 8)
    key.push_back(static_cast<char>((l >> shift) & 0xff));
  key.push_back(static_cast<char>(part));
  return key;
}

std::string TokenIdsKey(absl::string_view reference_key) {
  std::string key(reference_key);
  key.append(4, static_cast<char>(kTokenIdsLayer & 0xff));
  key.push_back('T');
  return key;
}

absl::StatusOr<DecodedReferenceKey> DecodeReferenceKey(absl::string_view key) {
  DecodedReferenceKey decoded;
  if (!ReadComponent(&key, &decoded.scope.tenant) ||
      !ReadComponent(&key, &decoded.scope.model_fingerprint) ||
      !ReadComponent(&key, &decoded.reference_id) || !key.empty()) {
    return absl::InvalidArgumentError("malformed reference key");
  }
  return decoded;
}

}  // namespace semshare::cache_node
