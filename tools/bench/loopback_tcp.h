#ifndef SEMSHARE_TOOLS_BENCH_LOOPBACK_TCP_H_
#define SEMSHARE_TOOLS_BENCH_LOOPBACK_TCP_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace semshare::bench {

// The bound for any transfer over loopback: pushes `bytes` through a plain TCP connection on
// 127.0.0.1 in writes of `write_bytes`, one sender thread and one receiver, and returns the
// throughput in GB/s (1e9 bytes per second) as seen by the receiver.
absl::StatusOr<double> MeasureLoopbackTcpGBps(int64_t bytes, int64_t write_bytes);

}  // namespace semshare::bench

#endif  // SEMSHARE_TOOLS_BENCH_LOOPBACK_TCP_H_
