#ifndef SEMSHARE_INFERENCE_WORKER_ENGINE_DEVICE_MEMORY_H_
#define SEMSHARE_INFERENCE_WORKER_ENGINE_DEVICE_MEMORY_H_

#include <c10/core/Device.h>

namespace semshare {

// The CUDA caching allocator's peak of allocated bytes, for benchmarks. Only a CUDA libtorch
// has the allocator: on CPU, or on a libtorch built without CUDA, peaks are unknown (-1) and
// resets do nothing; benchmarks then report the process's peak RSS instead.
void ResetPeakDeviceMemory(const c10::Device& device);
double PeakDeviceMemoryMb(const c10::Device& device);

}  // namespace semshare

#endif  // SEMSHARE_INFERENCE_WORKER_ENGINE_DEVICE_MEMORY_H_
