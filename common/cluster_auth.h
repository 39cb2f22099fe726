#ifndef SEMSHARE_COMMON_CLUSTER_AUTH_H_
#define SEMSHARE_COMMON_CLUSTER_AUTH_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace semshare {

// Inside the cluster the router authenticates clients and passes the tenant on to shards and
// workers in call metadata, vouched for by a secret every cluster process shares. The tenant
// never comes from a request field.
inline constexpr char kTenantMetadataKey[] = "x-semshare-tenant";
inline constexpr char kClusterTokenMetadataKey[] = "x-semshare-cluster-token";

// A tenant name: 1-128 characters of [A-Za-z0-9_.-]. InvalidArgument otherwise.
absl::Status ValidateTenantName(absl::string_view tenant);

// The shared cluster secret.
class ClusterToken {
 public:
  // Reads the token from a file (surrounding whitespace is dropped). InvalidArgument if it is
  // shorter than 16 characters or not printable ASCII, NotFound if the file is missing.
  static absl::StatusOr<ClusterToken> FromFile(const std::string& path);
  static absl::StatusOr<ClusterToken> FromString(absl::string_view token);

  // Constant-time in the length of the stored token, whatever `presented` is.
  bool Matches(absl::string_view presented) const;
  const std::string& value() const { return token_; }

 private:
  explicit ClusterToken(std::string token) : token_(std::move(token)) {}
  std::string token_;
};

// The server side of the check, on plain strings (nullptr: the metadata was absent). Returns
// the tenant, or Unauthenticated naming what is wrong (never echoing the presented token).
absl::StatusOr<std::string> AuthenticateTenant(const ClusterToken& token,
                                               const std::string* presented_token,
                                               const std::string* tenant);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_CLUSTER_AUTH_H_
