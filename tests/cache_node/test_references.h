#ifndef SEMSHARE_TESTS_CACHE_NODE_TEST_REFERENCES_H_
#define SEMSHARE_TESTS_CACHE_NODE_TEST_REFERENCES_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "cache_node/cache_node.h"
#include "cache_node/testing/synthetic.h"
#include "gtest/gtest.h"

namespace semshare::cache_node {

struct ReferenceShape {
  int64_t tokens = 40;
  int32_t layers = 3;
  int64_t heads = 2;
  int64_t head_dim = 8;
  DType dtype = DType::kFloat32;
  int32_t code_bits = 256;
  int32_t sketch_dim = 32;
};

// A reference with random ids, codes, sketch and KV bytes determined by `seed`
// (cache_node/testing/synthetic.h, in this file's shape vocabulary).
inline NewReference MakeReference(const std::string& id, const ReferenceShape& s, uint64_t seed) {
  testing::SyntheticShape shape;
  shape.num_tokens = s.tokens;
  shape.num_layers = s.layers;
  shape.kv_heads = s.heads;
  shape.head_dim = s.head_dim;
  shape.dtype = s.dtype;
  shape.code_bits = s.code_bits;
  shape.sketch_width = s.sketch_dim;
  return testing::SyntheticReference(id, shape, seed);
}

// A fresh, empty directory per test.
inline std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/semshare_cache_node_" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

// What FetchKV must return for one tensor: rows gathered by hand.
inline std::string HandGather(const TensorBlob& blob, const std::vector<int32_t>& rows) {
  const int64_t heads = blob.shape[0], tokens = blob.shape[1];
  const int64_t row = blob.shape[2] * DTypeSize(blob.dtype);
  std::string out;
  for (int64_t h = 0; h < heads; ++h) {
    for (int32_t r : rows) out.append(blob.data.data() + (h * tokens + r) * row, row);
  }
  return out;
}

}  // namespace semshare::cache_node

#endif  // SEMSHARE_TESTS_CACHE_NODE_TEST_REFERENCES_H_
