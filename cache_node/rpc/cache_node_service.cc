#include "cache_node/rpc/cache_node_service.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cache_node/rpc/kv_stream.h"
#include "cache_node/rpc/proto_convert.h"
#include "common/pipeline.h"
#include "common/rpc/grpc_status.h"
#include "common/rpc/rpc_metrics.h"
#include "common/status_macros.h"

namespace semshare::cache_node {
namespace {

// Messages of a FetchKV stream buffered between the reader and the network (each at most a
// 4 MiB chunk).
constexpr size_t kFetchQueueMessages = 4;

ReferenceScope Scope(const std::string& tenant, const std::string& model_fingerprint) {
  return ReferenceScope{tenant, model_fingerprint};
}

absl::Status RequireModel(const std::string& model_fingerprint) {
  if (model_fingerprint.empty()) return absl::InvalidArgumentError("model_fingerprint is empty");
  return absl::OkStatus();
}

}  // namespace

template <typename Body>
grpc::Status CacheNodeService::Serve(absl::string_view method, grpc::ServerContext* context,
                                     Body body) {
  return ToGrpcStatus(RecordedCall(metrics_, method, [&]() -> absl::Status {
    absl::StatusOr<std::string> tenant = AuthenticateCall(token_, *context);
    absl::Status status = tenant.ok() ? body(*tenant) : tenant.status();
    if (status.ok()) return status;
    return absl::Status(status.code(), absl::StrCat(method, ": ", status.message()));
  }));
}

grpc::Status CacheNodeService::PutReference(grpc::ServerContext* context,
                                            grpc::ServerReader<v1::PutReferenceRequest>* reader,
                                            v1::PutReferenceResponse* response) {
  return Serve("PutReference", context,
               [&](const std::string& tenant) { return Put(tenant, reader, response); });
}

absl::Status CacheNodeService::Put(const std::string& tenant,
                                   grpc::ServerReader<v1::PutReferenceRequest>* reader,
                                   v1::PutReferenceResponse* response) {
  v1::PutReferenceRequest request;
  if (!reader->Read(&request)) return absl::InvalidArgumentError("empty stream");
  if (!request.has_header())
    return absl::InvalidArgumentError("the first message must be a header");
  ReferenceAssembler::Limits limits;
  limits.max_reference_bytes = options_.max_reference_bytes;
  limits.max_chunk_bytes = options_.max_chunk_bytes;
  SEMSHARE_ASSIGN_OR_RETURN(
      std::unique_ptr<ReferenceAssembler> assembler,
      ReferenceAssembler::Start(std::move(*request.mutable_header()), limits));
  while (reader->Read(&request)) {
    if (!request.has_chunk()) return absl::InvalidArgumentError("a second header in one stream");
    SEMSHARE_RETURN_IF_ERROR(assembler->Add(request.mutable_chunk()));
  }
  SEMSHARE_ASSIGN_OR_RETURN(NewReference reference, assembler->Finish());
  response->set_reference_id(reference.reference_id);
  response->set_bytes(assembler->declared_bytes());
  return node_->Put(Scope(tenant, assembler->model_fingerprint()), std::move(reference));
}

grpc::Status CacheNodeService::FindSimilar(grpc::ServerContext* context,
                                           const v1::FindSimilarRequest* request,
                                           v1::FindSimilarResponse* response) {
  return Serve("FindSimilar", context, [&](const std::string& tenant) -> absl::Status {
    SEMSHARE_RETURN_IF_ERROR(RequireModel(request->model_fingerprint()));
    const TokenCodes target = TokenCodesFromProto(request->target_codes());
    SEMSHARE_ASSIGN_OR_RETURN(
        const FindResult result,
        node_->FindSimilar(Scope(tenant, request->model_fingerprint()), target,
                           absl::MakeConstSpan(request->sketch().data(), request->sketch_size()),
                           request->top_k()));
    FindResultToProto(result, response);
    return absl::OkStatus();
  });
}

grpc::Status CacheNodeService::FetchKV(grpc::ServerContext* context,
                                       const v1::FetchKVRequest* request,
                                       grpc::ServerWriter<v1::FetchKVResponse>* writer) {
  return Serve("FetchKV", context, [&](const std::string& tenant) -> absl::Status {
    SEMSHARE_RETURN_IF_ERROR(RequireModel(request->model_fingerprint()));
    const int64_t max_chunk_bytes = options_.max_chunk_bytes;
    const std::vector<std::vector<int32_t>> subsets = TokenSubsetsFromProto(*request);
    int64_t sent_bytes = 0;  // KV bytes of the layers handed to the stream
    // Reading and gathering layer l+1 overlaps sending layer l.
    absl::Status streamed = PipelineStream<v1::FetchKVResponse>(
        kFetchQueueMessages,
        [&](const std::function<absl::Status(v1::FetchKVResponse)>& push) {
          return node_->FetchKV(
              Scope(tenant, request->model_fingerprint()), request->reference_id(),
              absl::MakeConstSpan(request->source().data(), request->source_size()), subsets,
              [&](FetchedLayer layer) {
                const int64_t bytes =
                    static_cast<int64_t>(layer.kv.key.data.size() + layer.kv.value.data.size());
                SEMSHARE_RETURN_IF_ERROR(
                    WriteFetchedLayer(std::move(layer), max_chunk_bytes, push));
                sent_bytes += bytes;
                return absl::OkStatus();
              });
        },
        [writer](const v1::FetchKVResponse& response) {
          if (!writer->Write(response)) return absl::CancelledError("the client went away");
          return absl::OkStatus();
        });
    if (metrics_ != nullptr && sent_bytes > 0) metrics_->RecordKvSent(tenant, sent_bytes);
    return streamed;
  });
}

grpc::Status CacheNodeService::DeleteReference(grpc::ServerContext* context,
                                               const v1::DeleteReferenceRequest* request,
                                               v1::DeleteReferenceResponse* response) {
  return Serve("DeleteReference", context, [&](const std::string& tenant) -> absl::Status {
    SEMSHARE_RETURN_IF_ERROR(RequireModel(request->model_fingerprint()));
    return node_->Delete(Scope(tenant, request->model_fingerprint()), request->reference_id());
  });
}

grpc::Status CacheNodeService::ListReferences(grpc::ServerContext* context,
                                              const v1::ListReferencesRequest* request,
                                              v1::ListReferencesResponse* response) {
  return Serve("ListReferences", context, [&](const std::string& tenant) -> absl::Status {
    SEMSHARE_RETURN_IF_ERROR(RequireModel(request->model_fingerprint()));
    SEMSHARE_ASSIGN_OR_RETURN(const std::vector<ReferenceInfo> infos,
                              node_->List(Scope(tenant, request->model_fingerprint())));
    for (const ReferenceInfo& info : infos) ReferenceInfoToProto(info, response->add_references());
    return absl::OkStatus();
  });
}

grpc::Status CacheNodeService::GetStats(grpc::ServerContext* context,
                                        const v1::GetStatsRequest* request,
                                        v1::GetStatsResponse* response) {
  return Serve("GetStats", context, [&](const std::string& tenant) -> absl::Status {
    const NodeStats stats = node_->Stats();
    response->set_references(stats.references);
    response->set_bytes(stats.bytes);
    response->set_capacity_bytes(stats.capacity_bytes);
    response->set_corrupt_blobs_removed(stats.corrupt_blobs_removed);
    const auto it = stats.tenants.find(tenant);
    if (it != stats.tenants.end()) {
      v1::TenantStats* own = response->mutable_tenant();
      own->set_references(it->second.references);
      own->set_bytes(it->second.bytes);
      own->set_evicted_references(it->second.evicted_references);
      own->set_evicted_bytes(it->second.evicted_bytes);
    }
    return absl::OkStatus();
  });
}

}  // namespace semshare::cache_node
