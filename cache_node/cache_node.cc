#include "cache_node/cache_node.h"

#include "absl/strings/str_cat.h"

namespace semshare::cache_node {

absl::Status CacheNodeOptions::Validate() const {
  if (data_dir.empty()) return absl::InvalidArgumentError("cache node: data_dir is required");
  if (capacity_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache node: capacity_bytes must be > 0 (got ", capacity_bytes, ")"));
  }
  if (tenant_capacity_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cache node: tenant_capacity_bytes must be >= 0 (got ", tenant_capacity_bytes, ")"));
  }
  if (candidates <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache node: candidates must be > 0 (got ", candidates, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CacheNode>> OpenCacheNode(const CacheNodeOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  return absl::UnimplementedError("cache node: not implemented yet");
}

}  // namespace semshare::cache_node
