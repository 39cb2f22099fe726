#ifndef SEMSHARE_TESTS_INFERENCE_WORKER_SERVICE_WORKER_FIXTURE_H_
#define SEMSHARE_TESTS_INFERENCE_WORKER_SERVICE_WORKER_FIXTURE_H_

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/json.h"
#include "gtest/gtest.h"
#include "inference_worker/engine/engine.h"
#include "inference_worker/service/reference_source.h"
#include "tests/inference_worker/test_model_util.h"

namespace semshare::worker {

// The first reference/paraphrase pair of tests/data/pairs-dev.jsonl, tokenized with BOS.
inline std::pair<std::vector<int32_t>, std::vector<int32_t>> FirstPair() {
  std::ifstream in(std::string(SEMSHARE_TEST_DATA_DIR) + "/pairs-dev.jsonl");
  std::string line;
  std::getline(in, line);
  const Json pair = ParseJson(line).value();
  auto encode = [](const std::string& text) {
    std::vector<int32_t> ids = AustenModel().tokenizer()->Encode(text).value();
    ids.insert(ids.begin(), 1);
    return ids;
  };
  return {encode(pair["reference"].string_value()), encode(pair["target"].string_value())};
}

// The engine options the worker serves with in these tests; bypass is off so the engine's own
// Generate (the expected output) reuses too.
inline ReuseOptions WorkerReuse() {
  ReuseOptions options;
  options.bypass = false;
  return options;
}

// Passes calls through to `inner`, holding each FetchKV until released: a request can be kept
// executing without sleeping.
class GatedSource : public ReferenceSource {
 public:
  explicit GatedSource(ReferenceSource* inner) : inner_(inner) {}

  absl::Status FetchKV(const std::string& shard, const cache_node::ReferenceScope& scope,
                       const std::string& reference_id, absl::Span<const int32_t> source,
                       const std::function<absl::Status(cache_node::FetchedLayer)>& sink) override {
    if (!entered_.HasBeenNotified()) entered_.Notify();
    release_.WaitForNotification();
    return inner_->FetchKV(shard, scope, reference_id, source, sink);
  }
  absl::Status Put(const std::string& shard, const cache_node::ReferenceScope& scope,
                   cache_node::NewReference reference) override {
    return inner_->Put(shard, scope, std::move(reference));
  }

  void WaitUntilEntered() { entered_.WaitForNotification(); }
  void Release() { release_.Notify(); }

 private:
  ReferenceSource* inner_;
  absl::Notification entered_;
  absl::Notification release_;
};

}  // namespace semshare::worker

#endif  // SEMSHARE_TESTS_INFERENCE_WORKER_SERVICE_WORKER_FIXTURE_H_
