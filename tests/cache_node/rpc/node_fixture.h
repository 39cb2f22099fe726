#ifndef SEMSHARE_TESTS_CACHE_NODE_RPC_NODE_FIXTURE_H_
#define SEMSHARE_TESTS_CACHE_NODE_RPC_NODE_FIXTURE_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <memory>
#include <string>

#include "cache_node/cache_node.h"
#include "cache_node/rpc/cache_node_client.h"
#include "cache_node/rpc/cache_node_server.h"
#include "cache_node/rpc/metrics.h"
#include "cache_node/testing/synthetic.h"
#include "common/cluster_auth.h"

namespace semshare::cache_node {

inline constexpr char kTestToken[] = "test-cluster-token-0123456789";
inline constexpr char kModel[] = "model-fp-1";

inline ClusterToken TestToken() { return *ClusterToken::FromString(kTestToken); }

// A fresh directory under the test's temporary directory.
inline std::string MakeTempDir() {
  const char* base = getenv("TEST_TMPDIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/semshare_node_XXXXXX";
  char* dir = mkdtemp(pattern.data());
  EXPECT_NE(dir, nullptr);
  return pattern;
}

// Fetched layers equal, bit for bit.
inline void ExpectLayersEqual(const std::vector<FetchedLayer>& got,
                              const std::vector<FetchedLayer>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t l = 0; l < got.size(); ++l) {
    EXPECT_EQ(got[l].layer, want[l].layer);
    EXPECT_EQ(got[l].target_tokens, want[l].target_tokens);
    EXPECT_EQ(got[l].source_positions, want[l].source_positions);
    EXPECT_EQ(got[l].kv.key.dtype, want[l].kv.key.dtype);
    EXPECT_EQ(got[l].kv.key.shape, want[l].kv.key.shape);
    EXPECT_EQ(got[l].kv.value.shape, want[l].kv.value.shape);
    EXPECT_TRUE(got[l].kv.key.data == want[l].kv.key.data) << "layer " << l << " key differs";
    EXPECT_TRUE(got[l].kv.value.data == want[l].kv.value.data) << "layer " << l << " value differs";
  }
}

// A real cache node (RocksDB + FAISS) in a fresh directory, served in-process on port 0, and
// a client of it.
class NodeFixture : public ::testing::Test {
 protected:
  void StartNode(int64_t capacity_bytes = int64_t{1} << 30,
                 int64_t max_message_bytes = kDefaultMaxMessageBytes) {
    CacheNodeOptions options;
    options.data_dir = MakeTempDir();
    options.capacity_bytes = capacity_bytes;
    absl::StatusOr<std::unique_ptr<CacheNode>> node = OpenCacheNode(options);
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    CacheNodeServerOptions server_options;
    server_options.listen_address = "127.0.0.1:0";
    server_options.max_message_bytes = max_message_bytes;
    server_options.service.max_reference_bytes = capacity_bytes;
    metrics_ = std::make_unique<CacheNodeMetrics>([node = node_.get()] { return node->Stats(); });
    absl::StatusOr<std::unique_ptr<CacheNodeServer>> server =
        CacheNodeServer::Start(node_.get(), TestToken(), server_options, metrics_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ = *CacheNodeClient::Create(server_->address(), TestToken());
  }

  void TearDown() override {
    client_.reset();
    server_.reset();
    metrics_.reset();
    node_.reset();
  }

  static ReferenceScope Scope(const std::string& tenant) { return ReferenceScope{tenant, kModel}; }

  std::unique_ptr<CacheNode> node_;
  std::unique_ptr<CacheNodeMetrics> metrics_;  // what the server recorded
  std::unique_ptr<CacheNodeServer> server_;
  std::unique_ptr<CacheNodeClient> client_;
};

}  // namespace semshare::cache_node

#endif  // SEMSHARE_TESTS_CACHE_NODE_RPC_NODE_FIXTURE_H_
