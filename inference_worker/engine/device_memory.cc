#include "inference_worker/engine/device_memory.h"

#ifdef SEMSHARE_HAVE_CUDA_ALLOCATOR_STATS
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>  // current_device
#endif

namespace semshare {
namespace {

#ifdef SEMSHARE_HAVE_CUDA_ALLOCATOR_STATS
c10::DeviceIndex IndexOf(const c10::Device& device) {
  return device.has_index() ? device.index() : c10::cuda::current_device();
}
#endif

}  // namespace

void ResetPeakDeviceMemory(const c10::Device& device) {
#ifdef SEMSHARE_HAVE_CUDA_ALLOCATOR_STATS
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(IndexOf(device));
#endif
}

double PeakDeviceMemoryMb(const c10::Device& device) {
#ifdef SEMSHARE_HAVE_CUDA_ALLOCATOR_STATS
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(IndexOf(device));
    // Index 0 is StatType::AGGREGATE, the sum over small and large pools.
    return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0);
  }
#endif
  return -1.0;
}

}  // namespace semshare
