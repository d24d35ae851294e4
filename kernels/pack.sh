#!/usr/bin/env bash
# pack.sh — builds the CUDA binaries the GPU run needs (build-cuda, static deps) and packs them
# into .carry/cuda-bins.tar.xz (ignored by git). Every binary links OpenBLAS statically (~25 MB
# each), over the 64 MiB a device call may carry; xz over the near-identical binaries brings the
# set to a few MB. Then: device run with carry [".carry"], command `bash kernels/device_run.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}
cmake -S . -B build-cuda -DTP_STATIC_DEPS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# only what the GPU run uses (plugins are not needed by the bench or the CUDA tests)
# another engineer's half-written file may break a library for a minute: go on with the archives
# that built (the binaries below say what they link), and say so
for t in tp_script tp_gitinfo; do
  cmake --build build-cuda -j "$JOBS" --target "$t" || echo "pack.sh: warning: $t did not build" >&2
done
files=()
for t in telepathy tests/test_cuda_ops tests/test_cuda_model tests/test_ops tests/test_cuda_optim; do
  if make -C build-cuda "$(basename $t)/fast" >/dev/null; then files+=("$t"); else
    echo "pack.sh: $t did not build; packing the rest" >&2
  fi
done
mkdir -p .carry
stage=$(mktemp -d)
for f in "${files[@]}"; do
  mkdir -p "$stage/$(dirname "$f")"
  strip -o "$stage/$f" "build-cuda/$f"
done
tar -C "$stage" -cf - "${files[@]}" | xz -T2 -6e >.carry/cuda-bins.tar.xz
rm -rf "$stage"
git rev-parse --short HEAD >.carry/cuda-bins.commit
ls -la .carry/cuda-bins.tar.xz
