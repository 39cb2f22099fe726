#include "tools/bench/local_cluster.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/cluster_auth.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/rpc/cluster_metadata.h"
#include "common/status_macros.h"
#include "semshare/v1/worker.grpc.pb.h"

namespace semshare::bench {

std::string BinDir() {
  if (const char* dir = getenv("SEMSHARE_BIN_DIR"); dir != nullptr) return dir;
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "build/bin";
  std::string path(self, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

absl::Status RunCommand(const std::string& command) {
  const int status = std::system(command.c_str());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("failed: ", command));
  }
  return absl::OkStatus();
}

std::string ReadTrimmed(const std::string& path) {
  return std::string(absl::StripAsciiWhitespace(ReadFileToString(path).value_or("")));
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t index =
      std::min(values.size() - 1, static_cast<size_t>(q * static_cast<double>(values.size())));
  return values[index];
}

absl::StatusOr<int32_t> ConfigInt(const std::string& model, const std::string& key) {
  SEMSHARE_ASSIGN_OR_RETURN(std::string text, ReadFileToString(JoinPath(model, "config.json")));
  SEMSHARE_ASSIGN_OR_RETURN(Json config, ParseJson(text));
  SEMSHARE_ASSIGN_OR_RETURN(int64_t value, GetInt(config, key));
  return static_cast<int32_t>(value);
}

absl::StatusOr<std::string> BenchModel(const std::string& model, const std::string& dir) {
  if (!model.empty()) return model;
  const std::string made = JoinPath(dir, "bench-100m");
  if (!FileExists(JoinPath(made, "config.json"))) {
    SEMSHARE_RETURN_IF_ERROR(RunCommand(absl::StrCat("'", BinDir(),
                                                     "/semshare-make-model' --preset bench-100m "
                                                     "--seed 1 --out '",
                                                     made, "' >/dev/null")));
  }
  return made;
}

std::string TenantOfKey(const std::string& dir, const std::string& key) {
  for (absl::string_view line :
       absl::StrSplit(ReadFileToString(JoinPath(dir, "api_keys")).value_or(""), '\n')) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() == 3 && fields[0] == key) return std::string(fields[1]);
  }
  return "";
}

absl::StatusOr<std::string> ClusterDir(const std::string& dir, const std::string& prefix) {
  if (!dir.empty()) return dir;
  std::string pattern = absl::StrCat("/tmp/", prefix, "_XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  return pattern;
}

// Stores the worker has queued or running (-1 when it cannot be asked).
int32_t WorkerPendingStores(const std::string& dir) {
  absl::StatusOr<ClusterToken> token = ClusterToken::FromFile(JoinPath(dir, "cluster.token"));
  if (!token.ok()) return -1;
  auto stub = v1::Worker::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", ReadTrimmed(JoinPath(dir, "run/worker.port"))),
                          grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  AddClusterMetadata(*token, "bench", &context);
  v1::WorkerStatus status;
  if (!stub->GetStatus(&context, v1::GetWorkerStatusRequest(), &status).ok()) return -1;
  return status.pending_stores();
}

ClientCall StreamGenerate(v1::Router::Stub* stub, const std::string& api_key,
                          const std::vector<int32_t>& prompt, int32_t max_tokens) {
  grpc::ClientContext context;
  context.AddMetadata("authorization", absl::StrCat("Bearer ", api_key));
  v1::GenerateRequest request;
  request.mutable_prompt_token_ids()->Add(prompt.begin(), prompt.end());
  request.set_max_tokens(max_tokens);
  ClientCall call;
  const auto start = std::chrono::steady_clock::now();
  const auto since = [&start] {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
        .count();
  };
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
    if (response.has_tokens() && response.tokens().token_ids_size() > 0) {
      const double now = since();
      if (call.tokens == 0) call.ttft_ms = now;
      call.tokens += response.tokens().token_ids_size();
      call.token_ms.insert(call.token_ms.end(), response.tokens().token_ids_size(), now);
    }
    if (response.has_stats()) {
      call.hit = response.stats().cache_hit();
      call.reported_queue_ms = response.stats().stages().queue_ms();
    }
  }
  const grpc::Status status = reader->Finish();
  call.latency_ms = since();
  call.ok = status.ok();
  if (!status.ok()) call.error = status.error_message();
  if (call.tokens == 0) call.ttft_ms = call.latency_ms;
  return call;
}

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(const std::string& dir,
                                                                  const LocalClusterArgs& args) {
  const std::string env =
      absl::StrCat("SEMSHARE_BIN_DIR='", BinDir(), "' SEMSHARE_MODEL='", args.model,
                   "' SEMSHARE_DEVICE='", args.device, "' SEMSHARE_WORKER_ARGS='", args.worker_args,
                   "' SEMSHARE_ROUTER_ARGS='", args.router_args, "' ");
  SEMSHARE_RETURN_IF_ERROR(
      RunCommand(absl::StrCat(env, "bash '", args.script, "' up '", dir, "' >&2")));
  auto cluster = std::unique_ptr<LocalCluster>(new LocalCluster(dir, args.script));
  const std::map<std::string, std::string> vars = ReadKeyValueFile(JoinPath(dir, "cluster.env"));
  cluster->keys_ = {vars.at("SEMSHARE_API_KEY"), vars.at("SEMSHARE_API_KEY_2")};
  cluster->stub_ = v1::Router::NewStub(
      grpc::CreateChannel(vars.at("SEMSHARE_ROUTER"), grpc::InsecureChannelCredentials()));
  return cluster;
}

LocalCluster::~LocalCluster() {
  const absl::Status down = RunCommand(absl::StrCat("bash '", script_, "' down '", dir_, "' >&2"));
  if (!down.ok()) std::fprintf(stderr, "semshare-bench: %s\n", down.ToString().c_str());
}

void LocalCluster::WaitForStores() const {
  for (int i = 0; i < 3000 && WorkerPendingStores(dir_) > 0; ++i)
    absl::SleepFor(absl::Milliseconds(100));
}

}  // namespace semshare::bench
