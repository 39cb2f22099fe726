#ifndef SEMSHARE_TESTS_INFERENCE_WORKER_TEST_MODEL_UTIL_H_
#define SEMSHARE_TESTS_INFERENCE_WORKER_TEST_MODEL_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "common/json.h"
#include "gtest/gtest.h"
#include "inference_worker/engine/engine.h"
#include "inference_worker/engine/model.h"

namespace semshare {

inline std::string AustenDir() { return std::string(SEMSHARE_TEST_DATA_DIR) + "/austen-5m"; }

// The trained fixture model, loaded once per test binary (read-only after loading).
inline const Model& AustenModel() {
  static const Model* const model = [] {
    absl::StatusOr<std::unique_ptr<Model>> loaded = Model::Load(AustenDir(), ModelOptions{});
    if (!loaded.ok()) {
      ADD_FAILURE() << loaded.status();
      std::abort();
    }
    return loaded->release();
  }();
  return *model;
}

// The opening of Pride and Prejudice and a paraphrase of it (a few words changed): a hit.
inline constexpr const char* kReference =
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife. However little known the feelings or views of such a man may be on "
    "his first entering a neighbourhood, this truth is so well fixed in the minds of the "
    "surrounding families, that he is considered the rightful property of some one or other of "
    "their daughters.";
inline constexpr const char* kParaphrase =
    "It is a truth universally known, that a single man in possession of a large fortune, must be "
    "in want of a wife. However little known the feelings or views of such a man might be on his "
    "first entering the neighbourhood, this truth is so firmly fixed in the minds of the "
    "surrounding families, that he is thought the rightful property of one or other of their "
    "daughters.";

// Reuse with neither the bypass nor the similarity threshold in the way.
inline ReuseOptions NoBypass() {
  ReuseOptions options;
  options.bypass = false;
  options.similarity_threshold = 0.0;
  return options;
}

// A JSON array of numbers as token ids.
inline std::vector<int32_t> Ints(const Json& array) {
  std::vector<int32_t> out;
  for (const Json& v : array.array_items()) out.push_back(static_cast<int32_t>(v.number_value()));
  return out;
}

}  // namespace semshare

#endif  // SEMSHARE_TESTS_INFERENCE_WORKER_TEST_MODEL_UTIL_H_
