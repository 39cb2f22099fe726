#!/usr/bin/env bash
# Builds the engine-only target against libtorch 2.x on the CPU and runs its tests, on this
# Debian 12 machine and without a GPU: Debian 12 has only libtorch 1.13, so the build runs in a
# Debian 13 (trixie) chroot, whose libtorch-dev is 2.6 and whose compiler is GCC 14.
#
#   ./scripts/libtorch2_check.sh [ROOT]    # as root; ROOT defaults to /var/tmp/semshare-trixie
#
# The first run makes the chroot with debootstrap (about 2 GB, a few minutes); later runs reuse
# it. The working tree (tracked and untracked, not ignored files) is copied to ROOT/src, built
# with warnings as errors (SEMSHARE_WERROR=ON) and tested with ctest; the CudaTest cases skip.
# Not part of scripts/test.sh: it downloads a distribution.
set -euo pipefail
cd "$(dirname "$0")/.."

root="${1:-/var/tmp/semshare-trixie}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages=(libtorch-dev libabsl-dev libgtest-dev libgmock-dev cmake ninja-build g++ python3
  libopenblas0-openmp ccache)

[[ "$(id -u)" == 0 ]] || { echo "error: run as root (debootstrap and chroot)" >&2; exit 2; }
if ! command -v debootstrap >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
fi
if [[ ! -x "$root/usr/bin/apt-get" ]]; then
  echo "making a Debian 13 chroot in $root"
  debootstrap --variant=minbase trixie "$root" "$mirror" >/dev/null
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true' EXIT
chroot "$root" bash -c "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends ${packages[*]} >/dev/null"

rm -rf "$root/src"
mkdir -p "$root/src"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$root/src"
chroot "$root" bash -c '
  set -euo pipefail
  cd /src
  echo "libtorch $(dpkg-query -W -f="\${Version}" libtorch-dev), $(g++ --version | head -1)"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSEMSHARE_ENGINE_ONLY=ON \
    -DSEMSHARE_WERROR=ON -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/tmp/cmake.log 2>&1 ||
    { tail -30 /tmp/cmake.log; exit 1; }
  ninja -C build -j"$(nproc)" >/tmp/build.log || { grep -m20 -A5 "error" /tmp/build.log; exit 1; }
  cd build && ctest -j"$(nproc)" --output-on-failure
'
