#ifndef SEMSHARE_TESTS_INFERENCE_WORKER_TEST_MODEL_UTIL_H_
#define SEMSHARE_TESTS_INFERENCE_WORKER_TEST_MODEL_UTIL_H_

#include <memory>
#include <string>

#include "gtest/gtest.h"
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

}  // namespace semshare

#endif  // SEMSHARE_TESTS_INFERENCE_WORKER_TEST_MODEL_UTIL_H_
