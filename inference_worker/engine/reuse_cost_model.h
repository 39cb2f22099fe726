#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_REUSE_COST_MODEL_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_REUSE_COST_MODEL_H_

#include <cstdint>
#include <optional>
#include <string>

#include "inference_worker/engine/model_config.h"
#include "inference_worker/engine/reuse_options.h"

namespace semshare {

// What the bypass predicts a request costs, milliseconds.
struct ReusePrediction {
  double full_ms = 0;   // a full prefill
  double reuse_ms = 0;  // a semshare hit: encode, match, rearrange, selective recompute
  // The parts of the above that do not grow with the prompt (kernel launches, host round
  // trips, per-layer bookkeeping), measured on a short prompt; zero when not measured.
  double full_fixed_ms = 0;
  double reuse_fixed_ms = 0;
  // The counted work alone (flops and code scans at the speed measured on this device).
  double full_work_ms = 0;
  double reuse_work_ms = 0;
};

// Speeds measured on the serving device (cost_calibration.cc measures them).
struct MeasuredSpeeds {
  double flops_per_second = 0;
  double hamming_words_per_second = 0;  // 64-bit code words compared per second
};

// Milliseconds of a full prefill and of a semshare hit from counted work alone: linear layers
// and causal attention, the recompute schedule's shares (a layer projects keys/values for its
// whole set, runs queries, attention and MLP for the next layer's), the code scan and the
// gather. Pure.
ReusePrediction PredictReuseWork(const ModelConfig& config, const MeasuredSpeeds& speeds,
                                 int64_t target_tokens, int64_t reference_tokens,
                                 const ReuseOptions& options);

// Adds measured fixed costs. With the GPU model a full prefill costs the larger of its fixed
// costs and its work (the host enqueues while the device works), on the CPU their sum; a hit's
// fixed costs always add (it waits for the device in every layer).
ReusePrediction AddFixedCosts(ReusePrediction work, double full_fixed_ms, double reuse_fixed_ms,
                              bool gpu_cost_model);

// Why reuse would not pay (predicted at least 90% of a full prefill's time), or nullopt.
std::optional<std::string> BypassDecision(const ReusePrediction& prediction);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_REUSE_COST_MODEL_H_
