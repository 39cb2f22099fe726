#include "router/api_keys.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace semshare::router {
namespace {

constexpr size_t kMinKeyLength = 16;
constexpr size_t kMaxKeyLength = 256;
constexpr size_t kMaxTenantLength = 64;

bool IsKeyChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == '~' || c == '+' || c == '/' || c == '=';
}

bool IsTenantChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
}

bool AllOf(absl::string_view text, bool (*predicate)(char)) {
  for (char c : text) {
    if (!predicate(c)) return false;
  }
  return true;
}

absl::Status LineError(absl::string_view source, int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ":", line, ": ", what));
}

absl::Status Unauthenticated(absl::string_view why) { return absl::UnauthenticatedError(why); }

}  // namespace

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Walks all of `a` whatever `b` holds; the only branch is on the lengths.
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    const unsigned char other = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = diff | (static_cast<unsigned char>(a[i]) ^ other);
  }
  return diff == 0;
}

absl::StatusOr<ApiKeys> ApiKeys::Parse(absl::string_view text, absl::string_view source) {
  std::vector<Entry> entries;
  absl::flat_hash_map<std::string, int> line_of_key;
  absl::flat_hash_map<std::string, std::pair<int64_t, int>> budget_of_tenant;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);  // also drops a CRLF file's '\r'
    if (line.empty() || line.front() == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 3) {
      return LineError(
          source, line_number,
          absl::StrCat("expected 3 fields 'KEY TENANT BYTE_BUDGET', got ", fields.size()));
    }
    const absl::string_view key = fields[0];
    const absl::string_view tenant = fields[1];
    if (key.size() < kMinKeyLength || key.size() > kMaxKeyLength || !AllOf(key, IsKeyChar)) {
      return LineError(source, line_number,
                       absl::StrCat("key must be ", kMinKeyLength, " to ", kMaxKeyLength,
                                    " characters of [A-Za-z0-9-._~+/=]"));
    }
    if (tenant.empty() || tenant.size() > kMaxTenantLength || !AllOf(tenant, IsTenantChar)) {
      return LineError(source, line_number,
                       absl::StrCat("tenant '", tenant, "' must be 1 to ", kMaxTenantLength,
                                    " characters of [A-Za-z0-9_.-]"));
    }
    int64_t budget = 0;
    if (!absl::SimpleAtoi(fields[2], &budget) || budget < 0 || !AllOf(fields[2], [](char c) {
          return absl::ascii_isdigit(static_cast<unsigned char>(c));
        })) {
      return LineError(
          source, line_number,
          absl::StrCat("byte budget '", fields[2], "' is not a non-negative decimal integer"));
    }
    auto [key_it, new_key] = line_of_key.emplace(std::string(key), line_number);
    if (!new_key) {
      return LineError(source, line_number,
                       absl::StrCat("the same key is already on line ", key_it->second));
    }
    auto [tenant_it, new_tenant] =
        budget_of_tenant.emplace(std::string(tenant), std::make_pair(budget, line_number));
    if (!new_tenant && tenant_it->second.first != budget) {
      return LineError(
          source, line_number,
          absl::StrCat("tenant '", tenant, "' has byte budget ", budget, " here but ",
                       tenant_it->second.first, " on line ", tenant_it->second.second));
    }
    entries.push_back(Entry{std::string(key), TenantGrant{std::string(tenant), budget}});
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": no keys (expected lines 'KEY TENANT BYTE_BUDGET')"));
  }
  return ApiKeys(std::move(entries));
}

absl::StatusOr<ApiKeys> ApiKeys::Load(const std::string& path) {
  SEMSHARE_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return Parse(text, path);
}

absl::StatusOr<TenantGrant> ApiKeys::Authenticate(absl::string_view authorization) const {
  if (authorization.empty()) return Unauthenticated("missing authorization header");
  constexpr absl::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      !absl::StartsWithIgnoreCase(authorization, kScheme)) {
    return Unauthenticated("authorization header is not 'Bearer KEY'");
  }
  const absl::string_view key =
      absl::StripLeadingAsciiWhitespace(authorization.substr(kScheme.size()));
  if (key.empty() || key.size() > kMaxKeyLength || !AllOf(key, IsKeyChar)) {
    return Unauthenticated("authorization header is not 'Bearer KEY'");
  }
  const Entry* found = nullptr;
  for (const Entry& entry : entries_) {
    // No early exit: every key costs the same whether or not an earlier one matched.
    const bool equal = ConstantTimeEquals(key, entry.key);
    if (equal) found = &entry;
  }
  if (found == nullptr) return Unauthenticated("unknown API key");
  return found->grant;
}

absl::flat_hash_map<std::string, int64_t> ApiKeys::TenantByteBudgets() const {
  absl::flat_hash_map<std::string, int64_t> budgets;
  for (const Entry& entry : entries_) budgets[entry.grant.tenant] = entry.grant.byte_budget;
  return budgets;
}

}  // namespace semshare::router
