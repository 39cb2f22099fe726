#include "cache_node/kv_gather.h"

#include <cstring>

namespace semshare::cache_node {

TensorBlob GatherTokenRows(const TensorBlobView& in, absl::Span<const int32_t> rows) {
  const int64_t heads = in.shape[0];
  const int64_t tokens = in.shape[1];
  const int64_t row_bytes = in.shape[2] * DTypeSize(in.dtype);
  const int64_t out_rows = static_cast<int64_t>(rows.size());
  TensorBlob out;
  out.dtype = in.dtype;
  out.shape = {heads, out_rows, in.shape[2]};
  out.data.resize(static_cast<size_t>(heads * out_rows * row_bytes));
  char* dst = out.data.data();
  for (int64_t h = 0; h < heads; ++h) {
    const char* head = in.data.data() + h * tokens * row_bytes;
    for (int64_t r = 0; r < out_rows; ++r) {
      std::memcpy(dst, head + rows[r] * row_bytes, static_cast<size_t>(row_bytes));
      dst += row_bytes;
    }
  }
  return out;
}

}  // namespace semshare::cache_node
