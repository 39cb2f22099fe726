#ifndef SEMSHARE_COMMON_TENSOR_BLOB_H_
#define SEMSHARE_COMMON_TENSOR_BLOB_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace semshare {

// Element types a KV blob may hold. The values are stored on disk: never renumber.
enum class DType : uint8_t { kFloat32 = 1, kFloat16 = 2, kBFloat16 = 3 };

int64_t DTypeSize(DType dtype);
// Accepts "float32"/"fp32", "float16"/"fp16", "bfloat16"/"bf16".
absl::StatusOr<DType> ParseDType(absl::string_view name);
std::string DTypeName(DType dtype);

// A dense row-major tensor as raw bytes (host byte order, no conversion).
struct TensorBlob {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::string data;

  int64_t num_elements() const;
};

// A decoded blob whose payload still points into the encoded bytes (no copy): valid only
// while those bytes live.
struct TensorBlobView {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  absl::string_view data;

  int64_t num_elements() const;
};

// Self-describing encoding: magic, version, dtype, rank, dims, payload length, payload,
// then CRC32C over everything before it.
std::string EncodeTensorBlob(const TensorBlob& blob);
// The same encoding as header + blob.data + trailer, so a store can write it without first
// concatenating a copy of a large payload.
struct TensorBlobFraming {
  std::string header;
  std::string trailer;
};
TensorBlobFraming FrameTensorBlob(const TensorBlob& blob);
// DataLoss on checksum mismatch, InvalidArgument if malformed (bad magic, truncated, sizes
// that disagree with the shape and dtype).
absl::StatusOr<TensorBlob> DecodeTensorBlob(absl::string_view bytes);
// As DecodeTensorBlob, without copying the payload.
absl::StatusOr<TensorBlobView> DecodeTensorBlobView(absl::string_view bytes);
// Size EncodeTensorBlob produces for a blob of this rank and payload size.
int64_t EncodedTensorBlobSize(int64_t rank, int64_t payload_bytes);

// CRC-32C (Castagnoli); uses the SSE4.2 instruction when the CPU has it, a table otherwise.
// Pass a previous result as `crc` to extend it over more data.
uint32_t Crc32c(absl::string_view data, uint32_t crc = 0);
// The table implementation alone (same results), for CPUs without SSE4.2.
uint32_t Crc32cPortable(absl::string_view data, uint32_t crc = 0);

}  // namespace semshare

#endif  // SEMSHARE_COMMON_TENSOR_BLOB_H_
