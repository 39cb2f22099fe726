#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_SAFETENSORS_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_SAFETENSORS_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace semshare {

using TensorMap = std::map<std::string, at::Tensor>;

// Which tensors to read by name; empty = all. The others are never read (nor allocated), so
// one tensor of a large checkpoint costs only its own bytes.
using TensorFilter = std::function<bool(const std::string& name)>;

// Reads one .safetensors file into CPU tensors of the stored dtype (BF16, F16, F32, F64, I64,
// I32, I8, U8, BOOL). A truncated file, a header that points outside the data, overlapping
// tensors or an unknown dtype is DataLoss/InvalidArgument naming the file and the tensor.
absl::StatusOr<TensorMap> ReadSafetensorsFile(const std::string& path,
                                              const TensorFilter& wanted = {});

// Reads the weights of a checkpoint directory: model.safetensors, or the shards listed in
// model.safetensors.index.json ("weight_map"; shards holding no wanted tensor are not opened).
absl::StatusOr<TensorMap> ReadCheckpointTensors(const std::string& dir,
                                                const TensorFilter& wanted = {});

// Writes tensors (moved to CPU, made contiguous) as one .safetensors file, atomically.
absl::Status WriteSafetensorsFile(const std::string& path, const TensorMap& tensors);

// The safetensors name of a dtype ("BF16", "F32", ...); empty if the format has none.
std::string SafetensorsDtypeName(at::ScalarType dtype);

// One tensor of a file written by WriteSafetensorsFileStreaming.
struct SafetensorsEntry {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
};

// Writes a .safetensors file whose tensors are made one at a time, in `entries` order, so a
// file larger than memory can be written: the header is computed from the entries first,
// then `make_tensor` is called for each entry and must return a tensor of exactly that
// dtype and shape. Atomic like WriteSafetensorsFile. Returns the file size in bytes.
absl::StatusOr<int64_t> WriteSafetensorsFileStreaming(
    const std::string& path, const std::vector<SafetensorsEntry>& entries,
    const std::function<absl::StatusOr<at::Tensor>(const SafetensorsEntry&)>& make_tensor);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_SAFETENSORS_H_
