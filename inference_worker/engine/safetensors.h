#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_SAFETENSORS_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_SAFETENSORS_H_

#include <map>
#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace semshare {

using TensorMap = std::map<std::string, at::Tensor>;

// Reads one .safetensors file into CPU tensors of the stored dtype (BF16, F16, F32, F64, I64,
// I32, I8, U8, BOOL). A truncated file, a header that points outside the data, overlapping
// tensors or an unknown dtype is DataLoss/InvalidArgument naming the file and the tensor.
absl::StatusOr<TensorMap> ReadSafetensorsFile(const std::string& path);

// Reads the weights of a checkpoint directory: model.safetensors, or the shards listed in
// model.safetensors.index.json ("weight_map").
absl::StatusOr<TensorMap> ReadCheckpointTensors(const std::string& dir);

// Writes tensors (moved to CPU, made contiguous) as one .safetensors file, atomically.
absl::Status WriteSafetensorsFile(const std::string& path, const TensorMap& tensors);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_SAFETENSORS_H_
