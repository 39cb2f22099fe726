#ifndef SEMSHARE_COMMON_ALLOCATOR_H_
#define SEMSHARE_COMMON_ALLOCATOR_H_

namespace semshare {

// For long-running servers, called after each request: gives the heap's free pages back to the
// kernel (glibc malloc_trim), at most once a second per process. Without it, glibc keeps the
// activations, codes and KV blocks of finished requests in its heaps (it raises its mmap
// threshold to 32 MiB after the first large free), and under concurrent load each process held
// the high-water mark of all of them: the router grew from 0.3 to 1.9 GiB and the worker to
// 2.5 GiB with no leak. Trimming between requests keeps the reuse of memory within a request,
// which a low fixed mmap threshold would not (it made a 5,120-token prefill 50% slower).
void ReleaseFreeMemory();

}  // namespace semshare

#endif  // SEMSHARE_COMMON_ALLOCATOR_H_
