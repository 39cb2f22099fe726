#ifndef SEMSHARE_ROUTER_API_KEYS_H_
#define SEMSHARE_ROUTER_API_KEYS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// The router's `--api-keys FILE`: which tenant a caller is (DESIGN.md, "Tenancy and safety":
// the tenant comes from credentials, never from a request field).
//
// File format: UTF-8 text, one key per line, three fields separated by spaces or tabs:
//
//   # comment lines and blank lines are ignored
//   KEY  TENANT  BYTE_BUDGET
//
//   KEY          16 to 256 characters of [A-Za-z0-9-._~+/=] (an RFC 6750 bearer token)
//   TENANT       1 to 64 characters of [A-Za-z0-9_.-]; several keys may share a tenant
//   BYTE_BUDGET  a non-negative decimal integer: the tenant's reference bytes on each cache
//                node; 0 = only the node's total budget. Keys of one tenant must agree.
//
// A key listed twice is an error (naming both lines), as is anything else malformed.
namespace semshare::router {

struct TenantGrant {
  std::string tenant;
  int64_t byte_budget = 0;
};

class ApiKeys {
 public:
  // `source` names the text in errors ("FILE:LINE: ...").
  static absl::StatusOr<ApiKeys> Parse(absl::string_view text, absl::string_view source);
  static absl::StatusOr<ApiKeys> Load(const std::string& path);

  // The tenant of an `authorization` header value "Bearer KEY" (scheme case-insensitive).
  // Unauthenticated when the value is empty, malformed or names no known key; the message
  // never repeats the key. Every stored key is compared in constant time, without stopping at
  // a match, so timing tells nothing about which key or how much of it matched.
  absl::StatusOr<TenantGrant> Authenticate(absl::string_view authorization) const;

  size_t size() const { return entries_.size(); }
  // Every tenant's byte budget (keys of one tenant agree on it).
  absl::flat_hash_map<std::string, int64_t> TenantByteBudgets() const;

 private:
  struct Entry {
    std::string key;
    TenantGrant grant;
  };
  explicit ApiKeys(std::vector<Entry> entries) : entries_(std::move(entries)) {}

  std::vector<Entry> entries_;
};

// True when a == b; time depends only on the lengths, never on where they differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace semshare::router

#endif  // SEMSHARE_ROUTER_API_KEYS_H_
