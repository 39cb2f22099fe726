#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_KV_BLOBS_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_KV_BLOBS_H_

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/tensor_blob.h"

// A layer's K or V between the engine's tensors and the cache node's blobs.
namespace semshare::worker {

// A [kv_heads, n, head_dim] tensor on the CPU from a fetched blob; InvalidArgument when its
// shape and bytes disagree.
absl::StatusOr<at::Tensor> TensorFromBlob(const TensorBlob& blob);
// The tensor's bytes as a blob (copied to the CPU).
absl::StatusOr<TensorBlob> BlobFromTensor(const at::Tensor& tensor);

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_KV_BLOBS_H_
