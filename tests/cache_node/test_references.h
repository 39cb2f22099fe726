#ifndef SEMSHARE_TESTS_CACHE_NODE_TEST_REFERENCES_H_
#define SEMSHARE_TESTS_CACHE_NODE_TEST_REFERENCES_H_

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "cache_node/cache_node.h"
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

inline TensorBlob RandomTensor(const ReferenceShape& s, std::mt19937_64& rng) {
  TensorBlob blob;
  blob.dtype = s.dtype;
  blob.shape = {s.heads, s.tokens, s.head_dim};
  blob.data.resize(static_cast<size_t>(blob.num_elements() * DTypeSize(s.dtype)));
  for (char& c : blob.data) c = static_cast<char>(rng());
  return blob;
}

inline NewReference MakeReference(const std::string& id, const ReferenceShape& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  NewReference r;
  r.reference_id = id;
  for (int64_t t = 0; t < s.tokens; ++t) r.token_ids.push_back(static_cast<int32_t>(rng() % 32000));
  r.codes.nbits = s.code_bits;
  r.codes.words.resize(static_cast<size_t>(s.tokens * r.codes.words_per_code()));
  for (uint64_t& w : r.codes.words) w = rng();
  std::normal_distribution<float> normal;
  double norm = 0;
  for (int32_t i = 0; i < s.sketch_dim; ++i) {
    r.sketch.push_back(normal(rng));
    norm += r.sketch.back() * r.sketch.back();
  }
  for (float& x : r.sketch) x = static_cast<float>(x / std::sqrt(norm));
  for (int32_t l = 0; l < s.layers; ++l) r.layers.push_back({RandomTensor(s, rng), RandomTensor(s, rng)});
  return r;
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
