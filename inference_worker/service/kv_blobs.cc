#include "inference_worker/service/kv_blobs.h"

#include <ATen/ATen.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace semshare::worker {
namespace {

absl::StatusOr<at::ScalarType> ScalarTypeOf(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return at::kFloat;
    case DType::kFloat16:
      return at::kHalf;
    case DType::kBFloat16:
      return at::kBFloat16;
  }
  return absl::InvalidArgumentError("unknown KV dtype");
}

absl::StatusOr<DType> DTypeOf(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return DType::kFloat32;
    case at::kHalf:
      return DType::kFloat16;
    case at::kBFloat16:
      return DType::kBFloat16;
    default:
      return absl::InvalidArgumentError(absl::StrCat("no KV dtype for ", at::toString(type)));
  }
}

}  // namespace

absl::StatusOr<at::Tensor> TensorFromBlob(const TensorBlob& blob) {
  SEMSHARE_ASSIGN_OR_RETURN(at::ScalarType type, ScalarTypeOf(blob.dtype));
  int64_t numel = 1;
  for (int64_t d : blob.shape) numel *= d;
  if (blob.shape.size() != 3 || numel * static_cast<int64_t>(at::elementSize(type)) !=
                                    static_cast<int64_t>(blob.data.size())) {
    return absl::InvalidArgumentError("fetched KV blob has a bad shape or size");
  }
  at::Tensor t = at::empty(blob.shape, at::TensorOptions().dtype(type));
  std::memcpy(t.data_ptr(), blob.data.data(), blob.data.size());
  return t;
}

absl::StatusOr<TensorBlob> BlobFromTensor(const at::Tensor& tensor) {
  TensorBlob blob;
  SEMSHARE_ASSIGN_OR_RETURN(blob.dtype, DTypeOf(tensor.scalar_type()));
  const at::Tensor t = tensor.to(at::kCPU).contiguous();
  blob.shape.assign(t.sizes().begin(), t.sizes().end());
  blob.data.assign(static_cast<const char*>(t.data_ptr()), t.nbytes());
  return blob;
}

}  // namespace semshare::worker
