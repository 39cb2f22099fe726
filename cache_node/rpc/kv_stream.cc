#include "cache_node/rpc/kv_stream.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cache_node/rpc/proto_convert.h"
#include "common/status_macros.h"
#include "common/tensor_blob.h"

namespace semshare::cache_node {
namespace {

constexpr int kKey = 0;
constexpr int kValue = 1;

absl::StatusOr<int> PartIndex(v1::KVPart part) {
  if (part == v1::KV_PART_KEY) return kKey;
  if (part == v1::KV_PART_VALUE) return kValue;
  return absl::InvalidArgumentError(
      absl::StrCat("chunk: unknown KV part ", static_cast<int>(part)));
}

const char* PartName(int index) { return index == kKey ? "key" : "value"; }

// Appends one chunk to a part's bytes: it must continue exactly where the part ends and stay
// within the declared size. A chunk that is the whole part is taken without a copy.
absl::Status AppendChunk(v1::LayerChunk* chunk, int64_t declared_bytes, int64_t max_chunk_bytes,
                         std::string* part) {
  const std::string where = absl::StrCat(
      "layer ", chunk->layer(), " ", PartName(chunk->part() == v1::KV_PART_KEY ? kKey : kValue));
  const int64_t size = static_cast<int64_t>(chunk->data().size());
  if (size > max_chunk_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": chunk of ", size, " bytes is over the limit of ", max_chunk_bytes));
  }
  const int64_t have = static_cast<int64_t>(part->size());
  if (chunk->offset() != have) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": chunk at offset ", chunk->offset(),
                                                   " but ", have,
                                                   " bytes received so far (chunks go in order)"));
  }
  if (have + size > declared_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": chunk reaches byte ", have + size,
                                                   " past the declared ", declared_bytes));
  }
  if (have == 0 && size == declared_bytes) {
    part->swap(*chunk->mutable_data());
  } else {
    if (have == 0) part->reserve(static_cast<size_t>(declared_bytes));
    part->append(chunk->data());
  }
  return absl::OkStatus();
}

absl::Status CheckCrc(absl::string_view what, const std::string& data, uint32_t expected) {
  const uint32_t actual = Crc32c(data);
  if (actual != expected) {
    return absl::DataLossError(absl::StrFormat("%s: CRC32C mismatch (header 0x%08x, data 0x%08x)",
                                               what, expected, actual));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SplitIntoChunks(int32_t layer, v1::KVPart part, std::string data,
                             int64_t max_chunk_bytes,
                             const std::function<absl::Status(v1::LayerChunk)>& emit) {
  const int64_t size = static_cast<int64_t>(data.size());
  if (size <= max_chunk_bytes) {
    if (size == 0) return absl::OkStatus();
    v1::LayerChunk chunk;
    chunk.set_layer(layer);
    chunk.set_part(part);
    chunk.set_offset(0);
    chunk.set_data(std::move(data));
    return emit(std::move(chunk));
  }
  for (int64_t offset = 0; offset < size; offset += max_chunk_bytes) {
    v1::LayerChunk chunk;
    chunk.set_layer(layer);
    chunk.set_part(part);
    chunk.set_offset(offset);
    chunk.set_data(data.substr(static_cast<size_t>(offset), static_cast<size_t>(max_chunk_bytes)));
    SEMSHARE_RETURN_IF_ERROR(emit(std::move(chunk)));
  }
  return absl::OkStatus();
}

absl::Status WritePutReferenceStream(
    const std::string& model_fingerprint, NewReference reference, int64_t max_chunk_bytes,
    const std::function<absl::Status(v1::PutReferenceRequest)>& write) {
  v1::PutReferenceRequest first;
  v1::ReferenceHeader* header = first.mutable_header();
  header->set_reference_id(reference.reference_id);
  header->set_model_fingerprint(model_fingerprint);
  header->mutable_token_ids()->Assign(reference.token_ids.begin(), reference.token_ids.end());
  TokenCodesToProto(reference.codes, header->mutable_codes());
  header->mutable_sketch()->Assign(reference.sketch.begin(), reference.sketch.end());
  header->set_num_layers(static_cast<int32_t>(reference.layers.size()));
  header->set_tenant_byte_budget(reference.tenant_byte_budget);
  if (!reference.layers.empty()) {
    const TensorBlob& first_key = reference.layers[0].key;
    header->set_dtype(DTypeToProto(first_key.dtype));
    header->mutable_layer_shape()->Assign(first_key.shape.begin(), first_key.shape.end());
  }
  for (size_t l = 0; l < reference.layers.size(); ++l) {
    const LayerKV& kv = reference.layers[l];
    for (const TensorBlob* blob : {&kv.key, &kv.value}) {
      if (blob->dtype != reference.layers[0].key.dtype ||
          blob->shape != reference.layers[0].key.shape) {
        return absl::InvalidArgumentError(
            absl::StrCat("put reference: layer ", l, " differs in dtype or shape from layer 0"));
      }
    }
    header->add_key_crc32c(Crc32c(kv.key.data));
    header->add_value_crc32c(Crc32c(kv.value.data));
  }
  SEMSHARE_RETURN_IF_ERROR(write(std::move(first)));
  const auto emit = [&write](v1::LayerChunk chunk) {
    v1::PutReferenceRequest request;
    *request.mutable_chunk() = std::move(chunk);
    return write(std::move(request));
  };
  for (size_t l = 0; l < reference.layers.size(); ++l) {
    LayerKV& kv = reference.layers[l];
    const int32_t layer = static_cast<int32_t>(l);
    SEMSHARE_RETURN_IF_ERROR(
        SplitIntoChunks(layer, v1::KV_PART_KEY, std::move(kv.key.data), max_chunk_bytes, emit));
    SEMSHARE_RETURN_IF_ERROR(
        SplitIntoChunks(layer, v1::KV_PART_VALUE, std::move(kv.value.data), max_chunk_bytes, emit));
  }
  return absl::OkStatus();
}

ReferenceAssembler::ReferenceAssembler(v1::ReferenceHeader header, DType dtype, int64_t part_bytes,
                                       Limits limits)
    : header_(std::move(header)),
      dtype_(dtype),
      part_bytes_(part_bytes),
      limits_(limits),
      parts_(static_cast<size_t>(header_.num_layers())) {}

absl::StatusOr<std::unique_ptr<ReferenceAssembler>> ReferenceAssembler::Start(
    v1::ReferenceHeader header, const Limits& limits) {
  if (header.reference_id().empty()) {
    return absl::InvalidArgumentError("put reference: reference_id is empty");
  }
  if (header.model_fingerprint().empty()) {
    return absl::InvalidArgumentError("put reference: model_fingerprint is empty");
  }
  absl::StatusOr<DType> dtype = DTypeFromProto(header.dtype());
  if (!dtype.ok())
    return absl::InvalidArgumentError(absl::StrCat("put reference: ", dtype.status().message()));
  if (header.num_layers() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("put reference: num_layers must be > 0 (got ", header.num_layers(), ")"));
  }
  if (header.layer_shape_size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "put reference: layer_shape must be [kv_heads, num_tokens, head_dim] (got rank ",
        header.layer_shape_size(), ")"));
  }
  // Sizes are bounded one by one before multiplying so the product cannot overflow.
  int64_t part_bytes = DTypeSize(*dtype);
  for (int64_t dim : header.layer_shape()) {
    if (dim <= 0 || dim > (int64_t{1} << 24)) {
      return absl::InvalidArgumentError(
          absl::StrCat("put reference: layer_shape dimension ", dim, " out of range"));
    }
    part_bytes *= dim;
    if (part_bytes > (int64_t{1} << 40)) {
      return absl::ResourceExhaustedError("put reference: layer is larger than 1 TiB");
    }
  }
  if (header.key_crc32c_size() != header.num_layers() ||
      header.value_crc32c_size() != header.num_layers()) {
    return absl::InvalidArgumentError(
        absl::StrCat("put reference: need one key and one value CRC32C per layer (",
                     header.num_layers(), " layers, ", header.key_crc32c_size(), " key and ",
                     header.value_crc32c_size(), " value checksums)"));
  }
  const int64_t declared = 2 * part_bytes * header.num_layers();
  if (declared > limits.max_reference_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("put reference: ", declared,
                                                     " bytes of KV is over the limit of ",
                                                     limits.max_reference_bytes));
  }
  return std::unique_ptr<ReferenceAssembler>(
      new ReferenceAssembler(std::move(header), *dtype, part_bytes, limits));
}

absl::Status ReferenceAssembler::Add(v1::LayerChunk* chunk) {
  if (chunk->layer() < 0 || chunk->layer() >= header_.num_layers()) {
    return absl::InvalidArgumentError(absl::StrCat("put reference: chunk of layer ", chunk->layer(),
                                                   " but the header declares ",
                                                   header_.num_layers(), " layers"));
  }
  SEMSHARE_ASSIGN_OR_RETURN(const int part, PartIndex(chunk->part()));
  absl::Status appended = AppendChunk(chunk, part_bytes_, limits_.max_chunk_bytes,
                                      &parts_[static_cast<size_t>(chunk->layer())][part]);
  if (!appended.ok()) {
    return absl::Status(appended.code(), absl::StrCat("put reference: ", appended.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<NewReference> ReferenceAssembler::Finish() {
  for (size_t l = 0; l < parts_.size(); ++l) {
    for (int p : {kKey, kValue}) {
      if (static_cast<int64_t>(parts_[l][p].size()) != part_bytes_) {
        return absl::InvalidArgumentError(absl::StrCat("put reference: layer ", l, " ", PartName(p),
                                                       " incomplete: ", parts_[l][p].size(), " of ",
                                                       part_bytes_, " bytes received"));
      }
    }
    SEMSHARE_RETURN_IF_ERROR(CheckCrc(absl::StrCat("put reference: layer ", l, " key"),
                                      parts_[l][kKey], header_.key_crc32c(static_cast<int>(l))));
    SEMSHARE_RETURN_IF_ERROR(CheckCrc(absl::StrCat("put reference: layer ", l, " value"),
                                      parts_[l][kValue],
                                      header_.value_crc32c(static_cast<int>(l))));
  }
  NewReference reference;
  reference.reference_id = header_.reference_id();
  reference.token_ids.assign(header_.token_ids().begin(), header_.token_ids().end());
  reference.codes = TokenCodesFromProto(header_.codes());
  reference.sketch.assign(header_.sketch().begin(), header_.sketch().end());
  reference.tenant_byte_budget = header_.tenant_byte_budget();
  const std::vector<int64_t> shape(header_.layer_shape().begin(), header_.layer_shape().end());
  reference.layers.reserve(parts_.size());
  for (std::array<std::string, 2>& part : parts_) {
    LayerKV kv;
    kv.key.dtype = kv.value.dtype = dtype_;
    kv.key.shape = kv.value.shape = shape;
    kv.key.data = std::move(part[kKey]);
    kv.value.data = std::move(part[kValue]);
    reference.layers.push_back(std::move(kv));
  }
  return reference;
}

absl::Status WriteFetchedLayer(FetchedLayer layer, int64_t max_chunk_bytes,
                               const std::function<absl::Status(v1::FetchKVResponse)>& write) {
  v1::FetchKVResponse first;
  v1::FetchedLayerHeader* header = first.mutable_layer();
  header->set_layer(layer.layer);
  header->set_dtype(DTypeToProto(layer.kv.key.dtype));
  header->mutable_shape()->Assign(layer.kv.key.shape.begin(), layer.kv.key.shape.end());
  header->mutable_target_tokens()->Assign(layer.target_tokens.begin(), layer.target_tokens.end());
  header->mutable_source_positions()->Assign(layer.source_positions.begin(),
                                             layer.source_positions.end());
  header->set_key_bytes(static_cast<int64_t>(layer.kv.key.data.size()));
  header->set_value_bytes(static_cast<int64_t>(layer.kv.value.data.size()));
  header->set_key_crc32c(Crc32c(layer.kv.key.data));
  header->set_value_crc32c(Crc32c(layer.kv.value.data));
  SEMSHARE_RETURN_IF_ERROR(write(std::move(first)));
  const auto emit = [&write](v1::LayerChunk chunk) {
    v1::FetchKVResponse response;
    *response.mutable_chunk() = std::move(chunk);
    return write(std::move(response));
  };
  SEMSHARE_RETURN_IF_ERROR(SplitIntoChunks(layer.layer, v1::KV_PART_KEY,
                                           std::move(layer.kv.key.data), max_chunk_bytes, emit));
  return SplitIntoChunks(layer.layer, v1::KV_PART_VALUE, std::move(layer.kv.value.data),
                         max_chunk_bytes, emit);
}

absl::Status FetchedLayerAssembler::Add(v1::FetchKVResponse* response,
                                        const std::function<absl::Status(FetchedLayer)>& sink) {
  if (response->has_layer()) {
    if (header_.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("fetch kv: layer ", response->layer().layer(),
                                                     " began before layer ", header_->layer(),
                                                     " was complete"));
    }
    const v1::FetchedLayerHeader& h = response->layer();
    if (h.key_bytes() < 0 || h.value_bytes() < 0) {
      return absl::InvalidArgumentError("fetch kv: negative part size");
    }
    header_ = std::move(*response->mutable_layer());
    parts_[kKey].clear();
    parts_[kValue].clear();
  } else if (response->has_chunk()) {
    if (!header_.has_value())
      return absl::InvalidArgumentError("fetch kv: chunk before a layer header");
    v1::LayerChunk* chunk = response->mutable_chunk();
    if (chunk->layer() != header_->layer()) {
      return absl::InvalidArgumentError(absl::StrCat("fetch kv: chunk of layer ", chunk->layer(),
                                                     " inside layer ", header_->layer()));
    }
    SEMSHARE_ASSIGN_OR_RETURN(const int part, PartIndex(chunk->part()));
    if (part == kValue && static_cast<int64_t>(parts_[kKey].size()) != header_->key_bytes()) {
      return absl::InvalidArgumentError("fetch kv: value chunk before the key was complete");
    }
    SEMSHARE_RETURN_IF_ERROR(
        AppendChunk(chunk, part == kKey ? header_->key_bytes() : header_->value_bytes(),
                    max_chunk_bytes_, &parts_[part]));
  } else {
    return absl::InvalidArgumentError("fetch kv: empty response");
  }
  if (header_.has_value() && static_cast<int64_t>(parts_[kKey].size()) == header_->key_bytes() &&
      static_cast<int64_t>(parts_[kValue].size()) == header_->value_bytes()) {
    return Complete(sink);
  }
  return absl::OkStatus();
}

absl::Status FetchedLayerAssembler::Complete(
    const std::function<absl::Status(FetchedLayer)>& sink) {
  const v1::FetchedLayerHeader header = std::move(*header_);
  header_.reset();
  const std::string where = absl::StrCat("fetch kv: layer ", header.layer());
  SEMSHARE_RETURN_IF_ERROR(
      CheckCrc(absl::StrCat(where, " key"), parts_[kKey], header.key_crc32c()));
  SEMSHARE_RETURN_IF_ERROR(
      CheckCrc(absl::StrCat(where, " value"), parts_[kValue], header.value_crc32c()));
  absl::StatusOr<DType> dtype = DTypeFromProto(header.dtype());
  if (!dtype.ok())
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", dtype.status().message()));
  FetchedLayer layer;
  layer.layer = header.layer();
  layer.target_tokens.assign(header.target_tokens().begin(), header.target_tokens().end());
  layer.source_positions.assign(header.source_positions().begin(), header.source_positions().end());
  layer.kv.key.dtype = layer.kv.value.dtype = *dtype;
  layer.kv.key.shape.assign(header.shape().begin(), header.shape().end());
  layer.kv.value.shape = layer.kv.key.shape;
  for (TensorBlob* blob : {&layer.kv.key, &layer.kv.value}) {
    const std::string& data = blob == &layer.kv.key ? parts_[kKey] : parts_[kValue];
    if (blob->num_elements() * DTypeSize(*dtype) != static_cast<int64_t>(data.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", data.size(), " bytes do not fit the declared shape"));
    }
  }
  layer.kv.key.data = std::move(parts_[kKey]);
  layer.kv.value.data = std::move(parts_[kValue]);
  parts_[kKey].clear();
  parts_[kValue].clear();
  ++layers_received_;
  return sink(std::move(layer));
}

absl::Status FetchedLayerAssembler::Finish() const {
  if (header_.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("fetch kv: stream ended inside layer ", header_->layer()));
  }
  return absl::OkStatus();
}

}  // namespace semshare::cache_node
