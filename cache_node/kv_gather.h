#ifndef SEMSHARE_CACHE_NODE_KV_GATHER_H_
#define SEMSHARE_CACHE_NODE_KV_GATHER_H_

#include <cstdint>

#include "absl/types/span.h"
#include "common/tensor_blob.h"

namespace semshare::cache_node {

// Gathers token rows of a [heads, tokens, head_dim] tensor in its own dtype (bytes are
// copied, never converted): out[h, r, :] = in[h, rows[r], :]. Every row must be in
// [0, tokens); the caller checks.
TensorBlob GatherTokenRows(const TensorBlobView& in, absl::Span<const int32_t> rows);

}  // namespace semshare::cache_node

#endif  // SEMSHARE_CACHE_NODE_KV_GATHER_H_
