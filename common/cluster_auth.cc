#include "common/cluster_auth.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace semshare {

absl::Status ValidateTenantName(absl::string_view tenant) {
  if (tenant.empty() || tenant.size() > 128) {
    return absl::InvalidArgumentError("tenant name must be 1-128 characters");
  }
  for (char c : tenant) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return absl::InvalidArgumentError("tenant name may only hold [A-Za-z0-9_.-]");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ClusterToken> ClusterToken::FromString(absl::string_view token) {
  token = absl::StripAsciiWhitespace(token);
  if (token.size() < 16) {
    return absl::InvalidArgumentError("cluster token must be at least 16 characters");
  }
  for (char c : token) {
    if (c < 0x21 || c > 0x7e)
      return absl::InvalidArgumentError("cluster token must be printable ASCII");
  }
  return ClusterToken(std::string(token));
}

absl::StatusOr<ClusterToken> ClusterToken::FromFile(const std::string& path) {
  SEMSHARE_ASSIGN_OR_RETURN(std::string contents, ReadFileToString(path));
  absl::StatusOr<ClusterToken> token = FromString(contents);
  if (!token.ok())
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", token.status().message()));
  return token;
}

bool ClusterToken::Matches(absl::string_view presented) const {
  // Every byte of the stored token is compared whatever the presented length, so the time
  // taken says nothing about how much of a guess was right.
  unsigned char diff = presented.size() == token_.size() ? 0 : 1;
  for (size_t i = 0; i < token_.size(); ++i) {
    const unsigned char p = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    diff |= p ^ static_cast<unsigned char>(token_[i]);
  }
  return diff == 0;
}

absl::StatusOr<std::string> AuthenticateTenant(const ClusterToken& token,
                                               const std::string* presented_token,
                                               const std::string* tenant) {
  if (presented_token == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat("missing ", kClusterTokenMetadataKey, " metadata"));
  }
  if (!token.Matches(*presented_token)) {
    return absl::UnauthenticatedError(absl::StrCat("wrong ", kClusterTokenMetadataKey));
  }
  if (tenant == nullptr) {
    return absl::UnauthenticatedError(absl::StrCat("missing ", kTenantMetadataKey, " metadata"));
  }
  absl::Status valid = ValidateTenantName(*tenant);
  if (!valid.ok()) {
    return absl::UnauthenticatedError(absl::StrCat(kTenantMetadataKey, ": ", valid.message()));
  }
  return *tenant;
}

}  // namespace semshare
