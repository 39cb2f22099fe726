#!/usr/bin/env bash
# Measures the engine on a GPU machine that has a CUDA PyTorch (its libtorch, CMake) and nothing
# else: no gRPC, RocksDB, FAISS, Abseil or GoogleTest, and no network.
#
#   ./scripts/gpu_bench.sh pack            # here, on Debian 12: copies Abseil and GoogleTest
#                                          # (headers, libraries, CMake configs) into .gpu/
#   ./scripts/gpu_bench.sh run OUT_DIR     # there: builds the engine-only target against
#                                          # PyTorch's libtorch, runs the engine tests (the
#                                          # CudaTest ones included) and the ttft benchmark on
#                                          # the llama-3.2-1b and llama-3-8b shapes, in bf16
#
# Environment for run: GPU_PRESETS (default "llama-3.2-1b llama-3-8b"; empty runs the tests
# only), GPU_LENGTHS, GPU_TESTS=0 (skip the CUDA tests), CPU_TESTS_SECONDS (default 240; 0 skips
# the CPU tests), CPU_TESTS_FILTER, GDB_TESTS_FILTER (run those tests under cuda-gdb first).
#
# .gpu/ is ignored by git; carry it to the GPU machine with the working tree. Every result is
# written to OUT_DIR as soon as it exists (JSON plus the readable table), so a run cut short
# still leaves what it finished.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
multiarch=x86_64-linux-gnu

pack() {
  rm -rf .gpu
  mkdir -p .gpu/usr/include ".gpu/usr/lib/$multiarch/cmake"
  cp -a /usr/include/absl /usr/include/gtest /usr/include/gmock .gpu/usr/include/
  # Real files, not links: the SONAME links (libabsl_x.so.20220623) must arrive as files.
  cp -L /usr/lib/$multiarch/libabsl_*.so* /usr/lib/$multiarch/libgtest*.a \
    /usr/lib/$multiarch/libgmock*.a ".gpu/usr/lib/$multiarch/"
  cp -a "/usr/lib/$multiarch/cmake/absl" "/usr/lib/$multiarch/cmake/GTest" \
    ".gpu/usr/lib/$multiarch/cmake/"
  du -sh .gpu
}

run() {
  local out="$1"
  mkdir -p "$out"
  local lib="$PWD/.gpu/usr/lib/$multiarch"
  [[ -d "$lib/cmake/absl" ]] || { echo "no .gpu/: run '$0 pack' on Debian 12 and carry .gpu" >&2; exit 1; }
  local torch_prefix
  torch_prefix="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
                                   torch.cuda.get_device_name(0))' | tee "$out/environment.txt"
  { g++ --version | head -1; cmake --version | head -1; nvidia-smi -L; } | tee -a "$out/environment.txt"

  # The carried libraries need each other (libabsl_base needs libabsl_spinlock_wait): an
  # executable's RUNPATH does not reach its libraries' own needs, so the loader gets the path
  # (test discovery runs the test binary during the build).
  export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  # Warnings stay visible but are not errors: this libtorch deprecates what 1.13 needs.
  # --no-as-needed keeps libtorch_cuda linked although no symbol of ours names it, so that
  # CUDA registers itself. Abseil 20220623's headers predate GCC 13's leaner <string>.
  mkdir -p build-gpu
  TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" cmake -S . -B build-gpu "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release -DSEMSHARE_ENGINE_ONLY=ON -DSEMSHARE_WERROR=OFF \
    -DCMAKE_PREFIX_PATH="$torch_prefix" \
    -Dabsl_DIR="$lib/cmake/absl" -DGTest_DIR="$lib/cmake/GTest" \
    -DCMAKE_CXX_FLAGS="-include cstdint" \
    -DCMAKE_EXE_LINKER_FLAGS="-rdynamic -Wl,--no-as-needed -Wl,-rpath,$lib" \
    >build-gpu/cmake.log 2>&1 || { tail -50 build-gpu/cmake.log; exit 1; }
  local started=$SECONDS
  cmake --build build-gpu -j"$(nproc)" --target semshare-eval semshare-make-model \
    semshare-generate engine_tests >build-gpu/build.log 2>&1 ||
    { grep -m20 -A5 "error" build-gpu/build.log; exit 1; }
  echo "build: $((SECONDS - started)) s"

  # The engine's tests on the GPU first; the rest (on this machine's CPU, against libtorch 2.x)
  # after the benchmarks, within what is left of the time.
  if [[ "${GPU_TESTS:-1}" == 1 ]]; then
    build-gpu/bin/engine_tests --gtest_filter='CudaTest.*:DeviceMemoryTest.*' \
      >"$out/cuda_tests.log" 2>&1 || true
    grep -E "^\[  (PASSED|FAILED|SKIPPED) " "$out/cuda_tests.log" || tail -20 "$out/cuda_tests.log"
  fi

  # A 16 GB checkpoint writes and reads back much faster from memory than from that disk.
  local models=/tmp/semshare-models
  if (($(df --output=avail -k /dev/shm 2>/dev/null | tail -1 || echo 0) > 40000000)); then
    models=/dev/shm/semshare-models
  fi
  for preset in ${GPU_PRESETS-llama-3.2-1b llama-3-8b}; do
    local started=$SECONDS
    build-gpu/bin/semshare-make-model --preset "$preset" --seed 1 --out "$models/$preset" \
      >/dev/null || { echo "make-model $preset failed"; continue; }
    echo "make-model $preset: $((SECONDS - started)) s"
    build-gpu/bin/semshare-eval ttft --model "$models/$preset" --device cuda \
      --lengths "${GPU_LENGTHS:-512,1024,2048,3072,4096,5120}" --repeats 5 \
      --json "$out/ttft-$preset.json" | tee "$out/ttft-$preset.txt" ||
      echo "ttft $preset failed"
    rm -rf "${models:?}/$preset"
  done

  [[ "${CPU_TESTS_SECONDS:-240}" != 0 ]] || return 0
  # A crash there prints its stack: through cuda-gdb where the machine has it (it debugs host
  # code too), else through a backtrace handler.
  if command -v cuda-gdb >/dev/null && [[ -n "${GDB_TESTS_FILTER:-}" ]]; then
    timeout 300 cuda-gdb -batch -ex run -ex bt -ex "info registers rip" \
      --args build-gpu/bin/engine_tests --gtest_filter="$GDB_TESTS_FILTER" \
      >"$out/gdb.log" 2>&1 || true
    grep -E -A40 "received signal|^#0 " "$out/gdb.log" | head -80 || tail -30 "$out/gdb.log"
  fi
  cat >build-gpu/segv_backtrace.c <<'EOF'
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>
static void on_signal(int sig) {
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
  _exit(128 + sig);
}
__attribute__((constructor)) static void install(void) {
  signal(SIGSEGV, on_signal);
  signal(SIGABRT, on_signal);
}
EOF
  gcc -shared -fPIC -o build-gpu/segv_backtrace.so build-gpu/segv_backtrace.c
  # PyTorch's wheels export the std::filesystem they link statically (pytorch/pytorch#133437),
  # and the loader binds the tests' std::filesystem::remove_all to that copy, which jumps to
  # address 0 (seen with torch 2.11 through cuda-gdb). Loading the system libstdc++ first
  # makes every std:: symbol resolve to it. Only tests use std::filesystem; the engine does not.
  local libstdcxx
  libstdcxx="$(g++ -print-file-name=libstdc++.so.6)"
  LD_PRELOAD="$libstdcxx $PWD/build-gpu/segv_backtrace.so" timeout "${CPU_TESTS_SECONDS:-240}" \
    build-gpu/bin/engine_tests \
    --gtest_filter="${CPU_TESTS_FILTER:--CudaTest.*}" >"$out/engine_tests.log" 2>&1 ||
    echo "engine_tests exited with $?"
  grep -E "^\[  (PASSED|FAILED) " "$out/engine_tests.log" || tail -40 "$out/engine_tests.log"
}

case "$mode" in
  pack) pack ;;
  run)
    [[ $# -eq 2 ]] || { echo "usage: $0 run OUT_DIR" >&2; exit 2; }
    run "$2"
    ;;
  *)
    echo "usage: $0 pack | run OUT_DIR" >&2
    exit 2
    ;;
esac
