#include "router/client/semshare_client.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_status.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "semshare/v1/router.grpc.pb.h"

namespace semshare::client {
namespace {

// Large enough for the stats of a long prompt; token chunks are small.
constexpr int kMaxMessageBytes = 64 << 20;

GenerateStats StatsFromProto(const v1::GenerateStats& proto) {
  GenerateStats stats;
  stats.cache_hit = proto.cache_hit();
  stats.reference_id = proto.reference_id();
  stats.similarity = proto.similarity();
  stats.recompute_share = proto.recompute_share();
  stats.kv_kept_share = proto.kv_kept_share();
  stats.ttft_ms = proto.ttft_ms();
  stats.latency_ms = proto.latency_ms();
  stats.prompt_tokens = proto.prompt_tokens();
  stats.completion_tokens = proto.completion_tokens();
  stats.stages.tokenize_ms = proto.stages().tokenize_ms();
  stats.stages.search_ms = proto.stages().search_ms();
  stats.stages.fetch_ms = proto.stages().fetch_ms();
  stats.stages.recompute_ms = proto.stages().recompute_ms();
  stats.stages.decode_ms = proto.stages().decode_ms();
  stats.worker = proto.worker();
  stats.shard = proto.shard();
  stats.worker_local_hit = proto.worker_local_hit();
  stats.bypassed = proto.bypassed();
  stats.bypass_reason = proto.bypass_reason();
  return stats;
}

RouterStats RouterStatsFromProto(const v1::RouterStats& proto) {
  RouterStats stats;
  stats.requests = proto.requests();
  stats.hits = proto.hits();
  stats.misses = proto.misses();
  stats.failures = proto.failures();
  for (const v1::ShardStatus& shard : proto.shards()) {
    stats.shards.push_back({shard.address(), shard.healthy(), shard.references(), shard.bytes()});
  }
  for (const v1::WorkerLoad& worker : proto.workers()) {
    stats.workers.push_back(
        {worker.address(), worker.healthy(), worker.active_requests(), worker.queued_requests()});
  }
  return stats;
}

absl::Status ValidateGenerateOptions(const GenerateOptions& options) {
  if (options.max_tokens <= 0) return absl::InvalidArgumentError("max_tokens must be > 0");
  if (options.similarity_threshold.has_value() &&
      !(*options.similarity_threshold >= 0 && *options.similarity_threshold <= 1)) {
    return absl::InvalidArgumentError("similarity_threshold must be in [0, 1]");
  }
  if (!(options.temperature >= 0)) return absl::InvalidArgumentError("temperature must be >= 0");
  if (!(options.top_p > 0 && options.top_p <= 1)) {
    return absl::InvalidArgumentError("top_p must be in (0, 1]");
  }
  return absl::OkStatus();
}

void PrepareContext(const SemshareClient::Options& options, grpc::ClientContext* context) {
  context->AddMetadata("authorization", absl::StrCat("Bearer ", options.api_key));
  context->set_deadline(absl::ToChronoTime(absl::Now() + options.deadline));
}

}  // namespace

struct SemshareClient::StubHolder {
  std::unique_ptr<v1::Router::Stub> stub;
};

absl::StatusOr<std::unique_ptr<SemshareClient>> SemshareClient::Create(const Options& options) {
  if (options.router_address.empty()) {
    return absl::InvalidArgumentError("router address is empty");
  }
  if (options.api_key.empty()) return absl::InvalidArgumentError("api key is empty");
  if (options.deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("deadline must be > 0");
  }
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(kMaxMessageBytes);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      options.router_address, grpc::InsecureChannelCredentials(), arguments);
  return std::unique_ptr<SemshareClient>(new SemshareClient(std::move(channel), options));
}

SemshareClient::SemshareClient(std::shared_ptr<grpc::Channel> channel, Options options)
    : channel_(std::move(channel)),
      stub_(std::make_unique<StubHolder>(StubHolder{v1::Router::NewStub(channel_)})),
      options_(std::move(options)) {}

SemshareClient::~SemshareClient() = default;

absl::StatusOr<GenerateResult> SemshareClient::Generate(const std::string& prompt,
                                                        const GenerateOptions& options) {
  return Generate(prompt, options, [](const GenerateChunk&) { return absl::OkStatus(); });
}

absl::StatusOr<GenerateResult> SemshareClient::Generate(const std::string& prompt,
                                                        const GenerateOptions& options,
                                                        const ChunkCallback& on_chunk) {
  SEMSHARE_RETURN_IF_ERROR(ValidateGenerateOptions(options));
  // Protobuf strings must be UTF-8; the router could only answer "failed to parse".
  if (const size_t bad = FindInvalidUtf8(prompt); bad != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("the prompt is not valid UTF-8 (byte ", bad, "); convert it to UTF-8 first"));
  }
  v1::GenerateRequest request;
  request.set_prompt(prompt);
  request.set_max_tokens(options.max_tokens);
  if (options.similarity_threshold.has_value()) {
    request.set_similarity_threshold(*options.similarity_threshold);
  }
  request.set_temperature(options.temperature);
  request.set_top_p(options.top_p);
  request.set_seed(options.seed);

  grpc::ClientContext context;
  PrepareContext(options_, &context);
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      stub_->stub->Generate(&context, request);

  GenerateResult result;
  bool have_stats = false;
  // The first failure wins: the callback's own, or a stream that breaks the protocol.
  absl::Status failure;
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
    if (have_stats) {
      failure = absl::InternalError("router sent data after the generate stats");
    } else if (response.has_tokens()) {
      GenerateChunk chunk;
      chunk.token_ids.assign(response.tokens().token_ids().begin(),
                             response.tokens().token_ids().end());
      chunk.text = response.tokens().text();
      result.token_ids.insert(result.token_ids.end(), chunk.token_ids.begin(),
                              chunk.token_ids.end());
      result.text += chunk.text;
      failure = on_chunk(chunk);
    } else if (response.has_stats()) {
      result.stats = StatsFromProto(response.stats());
      have_stats = true;
    } else {
      failure = absl::InternalError("router sent an empty generate response");
    }
    if (!failure.ok()) {
      context.TryCancel();
      break;
    }
  }
  const absl::Status finished = FromGrpcStatus(reader->Finish());
  if (!failure.ok()) return failure;
  if (!finished.ok()) return finished;
  if (!have_stats) return absl::InternalError("router ended the generate stream without stats");
  return result;
}

absl::StatusOr<RouterStats> SemshareClient::Stats() {
  grpc::ClientContext context;
  PrepareContext(options_, &context);
  v1::RouterStats response;
  SEMSHARE_RETURN_IF_ERROR(
      FromGrpcStatus(stub_->stub->GetStats(&context, v1::GetRouterStatsRequest(), &response)));
  return RouterStatsFromProto(response);
}

}  // namespace semshare::client
