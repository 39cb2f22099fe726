#ifndef SEMSHARE_CACHE_NODE_RPC_KV_STREAM_H_
#define SEMSHARE_CACHE_NODE_RPC_KV_STREAM_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cache_node/cache_node.h"
#include "common/rpc/cluster_metadata.h"
#include "semshare/v1/cache_node.pb.h"

// KV crosses the wire as a header followed by LayerChunks of bounded size. This file holds
// both directions of both streams: PutReference (client splits, server reassembles) and
// FetchKV (server splits, client reassembles), so the framing rules live in one place.
namespace semshare::cache_node {

// Splits `data` into LayerChunks of at most max_chunk_bytes, in order, and hands each to
// `emit` (an empty part is sent as no chunk at all). Stops at the first error from `emit`.
absl::Status SplitIntoChunks(int32_t layer, v1::KVPart part, std::string data,
                             int64_t max_chunk_bytes,
                             const std::function<absl::Status(v1::LayerChunk)>& emit);

// Sends a whole reference as a PutReference stream: the header (with per-layer CRC32C), then
// each layer's key and value chunks. InvalidArgument if the layers do not share one
// shape/dtype (the header can only describe one).
absl::Status WritePutReferenceStream(
    const std::string& model_fingerprint, NewReference reference, int64_t max_chunk_bytes,
    const std::function<absl::Status(v1::PutReferenceRequest)>& write);

// Server side of PutReference: takes the header, then chunks, and yields the NewReference.
class ReferenceAssembler {
 public:
  struct Limits {
    int64_t max_reference_bytes =
        0;  // declared KV bytes of one reference; more -> ResourceExhausted
    int64_t max_chunk_bytes = kMaxKVChunkBytes;
  };

  // InvalidArgument for a header that cannot describe a reference (no id or model, unknown
  // dtype, a shape that is not [kv_heads, num_tokens, head_dim] with positive sizes, checksum
  // lists not one per layer); ResourceExhausted past max_reference_bytes.
  static absl::StatusOr<std::unique_ptr<ReferenceAssembler>> Start(v1::ReferenceHeader header,
                                                                   const Limits& limits);

  // InvalidArgument for a chunk over the size limit, of an unknown layer or part, out of
  // order, or reaching past the declared size. May take the chunk's bytes.
  absl::Status Add(v1::LayerChunk* chunk);

  // InvalidArgument naming the first incomplete part; DataLoss naming the first part whose
  // CRC32C differs from the header's.
  absl::StatusOr<NewReference> Finish();

  const std::string& reference_id() const { return header_.reference_id(); }
  const std::string& model_fingerprint() const { return header_.model_fingerprint(); }
  int64_t declared_bytes() const { return 2 * header_.num_layers() * part_bytes_; }

 private:
  ReferenceAssembler(v1::ReferenceHeader header, DType dtype, int64_t part_bytes, Limits limits);

  v1::ReferenceHeader header_;
  DType dtype_;
  int64_t part_bytes_;  // bytes of each layer's key, and of its value
  Limits limits_;
  std::vector<std::array<std::string, 2>> parts_;  // [layer][0 key, 1 value]
};

// Server side of FetchKV: one layer as a FetchedLayerHeader (with CRC32C of each part), then
// its key and value chunks.
absl::Status WriteFetchedLayer(FetchedLayer layer, int64_t max_chunk_bytes,
                               const std::function<absl::Status(v1::FetchKVResponse)>& write);

// Client side of FetchKV: feeds responses in order and hands each completed, checksum-verified
// layer to the sink.
class FetchedLayerAssembler {
 public:
  explicit FetchedLayerAssembler(int64_t max_chunk_bytes = kMaxKVChunkBytes)
      : max_chunk_bytes_(max_chunk_bytes) {}

  // InvalidArgument for a malformed stream (chunk before a header, wrong layer, out of order,
  // past the declared size), DataLoss on a checksum mismatch, or the sink's error.
  absl::Status Add(v1::FetchKVResponse* response,
                   const std::function<absl::Status(FetchedLayer)>& sink);
  // InvalidArgument if the stream ended inside a layer.
  absl::Status Finish() const;
  int32_t layers_received() const { return layers_received_; }

 private:
  absl::Status Complete(const std::function<absl::Status(FetchedLayer)>& sink);

  int64_t max_chunk_bytes_;
  std::optional<v1::FetchedLayerHeader> header_;
  std::array<std::string, 2> parts_;
  int32_t layers_received_ = 0;
};

}  // namespace semshare::cache_node

#endif  // SEMSHARE_CACHE_NODE_RPC_KV_STREAM_H_
