#include "cache_node/rpc/cache_node_client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <utility>

#include "cache_node/rpc/kv_stream.h"
#include "cache_node/rpc/proto_convert.h"
#include "common/rpc/grpc_status.h"
#include "common/status_macros.h"

namespace semshare::cache_node {

absl::StatusOr<std::unique_ptr<CacheNodeClient>> CacheNodeClient::Create(const std::string& address,
                                                                         ClusterToken token,
                                                                         const Options& options) {
  if (address.empty()) return absl::InvalidArgumentError("cache node address is empty");
  if (options.max_chunk_bytes <= 0 || options.max_chunk_bytes > kMaxKVChunkBytes) {
    return absl::InvalidArgumentError("max_chunk_bytes must be in (0, 4 MiB]");
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                ClusterChannelArguments(options.max_message_bytes));
  return std::unique_ptr<CacheNodeClient>(
      new CacheNodeClient(std::move(channel), std::move(token), options));
}

CacheNodeClient::CacheNodeClient(std::shared_ptr<grpc::Channel> channel, ClusterToken token,
                                 Options options)
    : channel_(std::move(channel)),
      stub_(v1::CacheNode::NewStub(channel_)),
      token_(std::move(token)),
      options_(options) {}

void CacheNodeClient::Prepare(const std::string& tenant, grpc::ClientContext* context) const {
  AddClusterMetadata(token_, tenant, context);
  context->set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
}

absl::Status CacheNodeClient::Put(const ReferenceScope& scope, NewReference reference) {
  grpc::ClientContext context;
  Prepare(scope.tenant, &context);
  v1::PutReferenceResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::PutReferenceRequest>> writer =
      stub_->PutReference(&context, &response);
  // A failed Write means the server already ended the call; Finish says why.
  absl::Status written = WritePutReferenceStream(
      scope.model_fingerprint, std::move(reference), options_.max_chunk_bytes,
      [&writer](const v1::PutReferenceRequest& request) {
        if (!writer->Write(request)) return absl::AbortedError("stream closed by the server");
        return absl::OkStatus();
      });
  if (written.ok()) writer->WritesDone();
  if (!written.ok() && !absl::IsAborted(written)) context.TryCancel();
  absl::Status finished = FromGrpcStatus(writer->Finish());
  if (!written.ok() && !absl::IsAborted(written)) return written;
  return finished;
}

absl::StatusOr<FindResult> CacheNodeClient::FindSimilar(const ReferenceScope& scope,
                                                        const TokenCodes& target,
                                                        absl::Span<const float> sketch,
                                                        int32_t top_k) {
  grpc::ClientContext context;
  Prepare(scope.tenant, &context);
  v1::FindSimilarRequest request;
  request.set_model_fingerprint(scope.model_fingerprint);
  TokenCodesToProto(target, request.mutable_target_codes());
  request.mutable_sketch()->Assign(sketch.begin(), sketch.end());
  request.set_top_k(top_k);
  v1::FindSimilarResponse response;
  SEMSHARE_RETURN_IF_ERROR(FromGrpcStatus(stub_->FindSimilar(&context, request, &response)));
  return FindResultFromProto(response);
}

absl::Status CacheNodeClient::FetchKV(const ReferenceScope& scope, const std::string& reference_id,
                                      absl::Span<const int32_t> source,
                                      const std::vector<std::vector<int32_t>>& token_subsets,
                                      const std::function<absl::Status(FetchedLayer)>& sink) {
  grpc::ClientContext context;
  Prepare(scope.tenant, &context);
  v1::FetchKVRequest request;
  request.set_reference_id(reference_id);
  request.set_model_fingerprint(scope.model_fingerprint);
  request.mutable_source()->Assign(source.begin(), source.end());
  for (const std::vector<int32_t>& subset : token_subsets) {
    request.add_token_subsets()->mutable_target_tokens()->Assign(subset.begin(), subset.end());
  }
  std::unique_ptr<grpc::ClientReader<v1::FetchKVResponse>> reader =
      stub_->FetchKV(&context, request);
  FetchedLayerAssembler assembler(options_.max_chunk_bytes);
  v1::FetchKVResponse response;
  absl::Status streamed;
  while (reader->Read(&response)) {
    streamed = assembler.Add(&response, sink);
    if (!streamed.ok()) {
      context.TryCancel();
      break;
    }
  }
  absl::Status finished = FromGrpcStatus(reader->Finish());
  if (!streamed.ok()) return streamed;
  if (!finished.ok()) return finished;
  return assembler.Finish();
}

absl::Status CacheNodeClient::Delete(const ReferenceScope& scope, const std::string& reference_id) {
  grpc::ClientContext context;
  Prepare(scope.tenant, &context);
  v1::DeleteReferenceRequest request;
  request.set_reference_id(reference_id);
  request.set_model_fingerprint(scope.model_fingerprint);
  v1::DeleteReferenceResponse response;
  return FromGrpcStatus(stub_->DeleteReference(&context, request, &response));
}

absl::StatusOr<std::vector<ReferenceInfo>> CacheNodeClient::List(const ReferenceScope& scope) {
  grpc::ClientContext context;
  Prepare(scope.tenant, &context);
  v1::ListReferencesRequest request;
  request.set_model_fingerprint(scope.model_fingerprint);
  v1::ListReferencesResponse response;
  SEMSHARE_RETURN_IF_ERROR(FromGrpcStatus(stub_->ListReferences(&context, request, &response)));
  std::vector<ReferenceInfo> infos;
  for (const v1::ReferenceInfo& info : response.references()) {
    infos.push_back(ReferenceInfoFromProto(info));
  }
  return infos;
}

absl::StatusOr<v1::GetStatsResponse> CacheNodeClient::GetStats(const std::string& tenant) {
  grpc::ClientContext context;
  Prepare(tenant, &context);
  v1::GetStatsResponse response;
  SEMSHARE_RETURN_IF_ERROR(
      FromGrpcStatus(stub_->GetStats(&context, v1::GetStatsRequest(), &response)));
  return response;
}

}  // namespace semshare::cache_node
