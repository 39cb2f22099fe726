// The semshare-cache-node binary as a separate process: start-up, SIGTERM, SIGKILL under load.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"
#include "common/rpc/health_check.h"
#include "tests/cache_node/rpc/node_fixture.h"
#include "tests/common/http_get.h"

extern char** environ;

namespace semshare::cache_node {
namespace {

using ::testing::HasSubstr;

// A semshare-cache-node child process whose stdout the test reads.
class NodeProcess {
 public:
  explicit NodeProcess(std::vector<std::string> args) {
    int pipe_fds[2];
    EXPECT_EQ(pipe(pipe_fds), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
    const std::string binary = std::string(SEMSHARE_BIN_DIR) + "/semshare-cache-node";
    args.insert(args.begin(), binary);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);
    out_ = fdopen(pipe_fds[0], "r");
  }
  ~NodeProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Wait();
    }
    if (out_ != nullptr) fclose(out_);
  }

  // Reads output until the ready line; false if the process ended first.
  bool WaitReady() {
    char line[4096];
    while (fgets(line, sizeof(line), out_) != nullptr) {
      output_ += line;
      if (absl::StartsWith(line, "semshare-cache-node ready:")) {
        for (absl::string_view field : absl::StrSplit(absl::string_view(line), ' ')) {
          if (absl::ConsumePrefix(&field, "listen=")) address_ = std::string(field);
          if (absl::ConsumePrefix(&field, "metrics_port=")) {
            EXPECT_TRUE(absl::SimpleAtoi(field, &metrics_port_));
          }
          if (absl::ConsumePrefix(&field, "references=")) {
            EXPECT_TRUE(absl::SimpleAtoi(field, &references_));
          }
        }
        return true;
      }
    }
    return false;
  }
  // Reads the rest of the output (until the process closes it).
  const std::string& ReadAll() {
    char line[4096];
    while (fgets(line, sizeof(line), out_) != nullptr) output_ += line;
    return output_;
  }
  void Signal(int sig) { kill(pid_, sig); }
  // The exit status as waitpid reports it.
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  const std::string& address() const { return address_; }
  int metrics_port() const { return metrics_port_; }
  int64_t references() const { return references_; }
  const std::string& output() const { return output_; }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  std::string output_;
  std::string address_;
  int metrics_port_ = 0;
  int64_t references_ = -1;
};

std::string ScrapeMetrics(int port) { return testing_http::HttpGet(port, "/metrics"); }

testing::SyntheticShape LoadShape() {
  testing::SyntheticShape shape;
  shape.num_tokens = 256;
  shape.num_layers = 4;
  shape.kv_heads = 4;
  shape.head_dim = 64;  // 2 MiB of KV a reference
  return shape;
}

uint64_t SeedOf(const std::string& id) { return std::hash<std::string>()(id); }

class CacheNodeProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    token_file_ = JoinPath(dir_, "token");
    ASSERT_TRUE(WriteStringToFile(token_file_, std::string(kTestToken) + "\n").ok());
  }

  std::unique_ptr<NodeProcess> Start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--listen",
                                     "127.0.0.1:0",
                                     "--data-dir",
                                     JoinPath(dir_, "data"),
                                     "--metrics-listen",
                                     "127.0.0.1:0",
                                     "--capacity-bytes",
                                     std::to_string(int64_t{1} << 30),
                                     "--cluster-token-file",
                                     token_file_};
    args.insert(args.end(), extra.begin(), extra.end());
    auto process = std::make_unique<NodeProcess>(args);
    if (!process->WaitReady()) {
      ADD_FAILURE() << "no ready line; output:\n" << process->ReadAll();
      return nullptr;
    }
    return process;
  }

  std::unique_ptr<CacheNodeClient> Connect(const NodeProcess& process) {
    auto client = *CacheNodeClient::Create(process.address(), TestToken());
    EXPECT_TRUE(CheckHealth(client->channel(), absl::Seconds(30)).ok());
    return client;
  }

  // Fetches `id` with the identity mapping and compares every layer with the reference it was
  // generated from.
  void ExpectIntact(CacheNodeClient* client, const std::string& id) {
    const NewReference reference = testing::SyntheticReference(id, LoadShape(), SeedOf(id));
    std::vector<int32_t> identity;
    for (int32_t t = 0; t < 256; ++t) identity.push_back(t);
    int32_t layers = 0;
    const absl::Status status =
        client->FetchKV(ReferenceScope{"alice", kModel}, id, identity, {}, [&](FetchedLayer layer) {
          const FetchedLayer want =
              testing::ExpectedFetchedLayer(reference, layer.layer, identity, identity);
          EXPECT_TRUE(layer.kv.key.data == want.kv.key.data) << id << " layer " << layer.layer;
          EXPECT_TRUE(layer.kv.value.data == want.kv.value.data) << id << " layer " << layer.layer;
          ++layers;
          return absl::OkStatus();
        });
    EXPECT_TRUE(status.ok()) << id << ": " << status;
    EXPECT_EQ(layers, 4) << id;
    absl::StatusOr<FindResult> found =
        client->FindSimilar(ReferenceScope{"alice", kModel}, reference.codes, reference.sketch, 1);
    ASSERT_TRUE(found.ok()) << found.status();
    ASSERT_FALSE(found->matches.empty()) << id;
    EXPECT_DOUBLE_EQ(found->matches[0].similarity, 1.0) << id;
  }

  std::string dir_;
  std::string token_file_;
};

TEST_F(CacheNodeProcessTest, BadFlagsFailFastWithAMessage) {
  NodeProcess process({"--listen", "127.0.0.1:0", "--data-dir", JoinPath(dir_, "d"),
                       "--metrics-listen", "127.0.0.1:0", "--cluster-token-file", token_file_});
  EXPECT_FALSE(process.WaitReady());
  EXPECT_THAT(process.ReadAll(), HasSubstr("capacity_bytes must be > 0"));
  const int status = process.Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2);

  NodeProcess no_token({"--listen", "127.0.0.1:0", "--data-dir", JoinPath(dir_, "d"),
                        "--metrics-listen", "127.0.0.1:0", "--capacity-bytes", "1000000",
                        "--cluster-token-file", token_file_ + ".missing"});
  EXPECT_FALSE(no_token.WaitReady());
  EXPECT_THAT(no_token.ReadAll(), HasSubstr(".missing"));
  EXPECT_NE(no_token.Wait(), 0);
}

TEST_F(CacheNodeProcessTest, SigtermShutsDownCleanlyAndRestartKeepsReferences) {
  std::unique_ptr<NodeProcess> process = Start();
  ASSERT_NE(process, nullptr);
  EXPECT_EQ(process->references(), 0);
  {
    auto client = Connect(*process);
    for (const std::string id : {"a", "b", "c"}) {
      ASSERT_TRUE(client
                      ->Put(ReferenceScope{"alice", kModel},
                            testing::SyntheticReference(id, LoadShape(), SeedOf(id)))
                      .ok());
    }
    const std::string metrics = ScrapeMetrics(process->metrics_port());
    EXPECT_THAT(metrics,
                HasSubstr("semshare_cache_node_rpcs_total{code=\"OK\",method=\"PutReference\"} 3"));
    EXPECT_THAT(metrics, HasSubstr("semshare_cache_node_references{tenant=\"alice\"} 3"));
    EXPECT_THAT(metrics,
                HasSubstr("# TYPE semshare_cache_node_corrupt_blobs_removed_total counter"));
    EXPECT_THAT(metrics, HasSubstr("semshare_cache_node_stored_bytes{tenant=\"alice\"}"));
    EXPECT_THAT(metrics, HasSubstr("semshare_cache_node_rpc_seconds_bucket"));
  }
  process->Signal(SIGTERM);
  EXPECT_THAT(process->ReadAll(), HasSubstr("semshare-cache-node: stopped"));
  const int status = process->Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  process = Start();
  ASSERT_NE(process, nullptr);
  EXPECT_EQ(process->references(), 3);
  auto client = Connect(*process);
  for (const std::string id : {"a", "b", "c"}) ExpectIntact(client.get(), id);
}

TEST_F(CacheNodeProcessTest, AcknowledgedReferencesSurviveSigkillUnderWriteLoad) {
  std::unique_ptr<NodeProcess> process = Start();
  ASSERT_NE(process, nullptr);
  absl::Mutex mu;
  std::set<std::string> acknowledged ABSL_GUARDED_BY(mu);
  std::set<std::string> attempted ABSL_GUARDED_BY(mu);
  std::vector<std::thread> writers;
  for (int w = 0; w < 3; ++w) {
    writers.emplace_back([&, w] {
      auto client = *CacheNodeClient::Create(process->address(), TestToken());
      for (int i = 0;; ++i) {
        const std::string id = absl::StrCat("w", w, "-", i);
        {
          absl::MutexLock lock(&mu);
          attempted.insert(id);
        }
        if (!client
                 ->Put(ReferenceScope{"alice", kModel},
                       testing::SyntheticReference(id, LoadShape(), SeedOf(id)))
                 .ok()) {
          return;  // the node is gone
        }
        absl::MutexLock lock(&mu);
        acknowledged.insert(id);
      }
    });
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](std::set<std::string>* acked) { return acked->size() >= 40; }, &acknowledged));
  }
  process->Signal(SIGKILL);
  process->Wait();
  for (std::thread& t : writers) t.join();

  process = Start();
  ASSERT_NE(process, nullptr);
  auto client = Connect(*process);
  absl::StatusOr<std::vector<ReferenceInfo>> listed = client->List(ReferenceScope{"alice", kModel});
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::set<std::string> visible;
  for (const ReferenceInfo& info : *listed) visible.insert(info.reference_id);
  absl::MutexLock lock(&mu);
  EXPECT_GE(acknowledged.size(), 40u);
  EXPECT_EQ(process->references(), static_cast<int64_t>(visible.size()));
  for (const std::string& id : acknowledged) {
    EXPECT_TRUE(visible.count(id) > 0) << "acknowledged " << id << " lost";
  }
  // Whatever is visible (acknowledged, or in flight at the kill) is whole.
  for (const std::string& id : visible) {
    EXPECT_TRUE(attempted.count(id) > 0) << id;
    ExpectIntact(client.get(), id);
  }
}

}  // namespace
}  // namespace semshare::cache_node
