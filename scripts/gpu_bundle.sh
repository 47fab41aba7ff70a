#!/usr/bin/env bash
# Builds what scripts/gpu_check.sh runs, here, and packs it for a GPU machine
# that cannot build it (no gRPC, RocksDB, Abseil... and nothing to fetch):
#
#   scripts/gpu_bundle.sh [OUT]      # default OUT: .gpu (git-ignored)
#
# Release binaries for sm_90 (H100/H200) -- device_test, cuda_backend_test,
# cuda_model_test, cuda_bench, ps_server, ps_worker, ps_datagen -- stripped,
# with every shared library they load except the NVIDIA ones (the driver,
# cudart, cuBLAS: the GPU machine's own are used), and this machine's dynamic
# loader, so they run there whatever its glibc:
#   lib/ld-linux-x86-64.so.2 --library-path lib:<cuda libs> bin/<program>
# Written to OUT/bundle.tar.xz (and listed in OUT/bundle.txt), with the
# checksums of the sources it was built from. gpu_check.sh uses
# OUT/bundle.tar.xz instead of building when it finds one, and refuses it
# when the sources have changed since. The build
# folder is $PS_BUNDLE_BUILD_DIR (default build-bundle/).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/.gpu}"
BUILD="${PS_BUNDLE_BUILD_DIR:-$ROOT/build-bundle}"
JOBS="${PS_JOBS:-$(nproc)}"
PROGRAMS=(tests/device_test tests/cuda_backend_test tests/cuda_model_test
          tests/cuda_bench server/ps_server worker/ps_worker tools/ps_datagen)

command -v nvcc >/dev/null || { echo "gpu_bundle: nvcc not found" >&2; exit 1; }
echo "gpu_bundle: building in $BUILD"
mkdir -p "$BUILD"
# What it is built from, taken before the build: gpu_check.sh refuses a
# bundle whose sources differ from the tree it runs in.
sources() {
  ( cd "$ROOT" &&
    git ls-files -co --exclude-standard CMakeLists.txt common kernels proto \
      server worker tools tests | xargs sha256sum )
}
sources >"$BUILD/SOURCES.sha256"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES=90 >"$BUILD/configure.log" 2>&1 ||
  { cat "$BUILD/configure.log"; exit 1; }
targets=()
for p in "${PROGRAMS[@]}"; do targets+=("$(basename "$p")"); done
cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}" >"$BUILD/build.log" 2>&1 ||
  { grep -E "error" -A5 "$BUILD/build.log" | head -40; exit 1; }

sources | cmp -s - "$BUILD/SOURCES.sha256" ||
  { echo "gpu_bundle: sources changed during the build: run it again" >&2; exit 1; }

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bundle/bin" "$STAGE/bundle/lib" "$OUT"
for p in "${PROGRAMS[@]}"; do
  cp "$BUILD/$p" "$STAGE/bundle/bin/"
  strip "$STAGE/bundle/bin/$(basename "$p")"
done
# Every library the programs load, but the NVIDIA ones.
for p in "${PROGRAMS[@]}"; do ldd "$BUILD/$p"; done |
  awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -Ev '/(libcuda|libcudart|libcublas|libcublasLt|libnvidia)[^/]*$' |
  while read -r lib; do cp -L "$lib" "$STAGE/bundle/lib/"; done
cp -L /lib64/ld-linux-x86-64.so.2 "$STAGE/bundle/lib/"
cp "$BUILD/SOURCES.sha256" "$STAGE/bundle/"
echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
     "$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo '(with uncommitted changes)')" \
     "built $(date -u +%FT%TZ)" >"$STAGE/bundle/VERSION"
( cd "$STAGE" && cat bundle/VERSION && ls -l bundle/bin bundle/lib ) >"$OUT/bundle.txt"
tar -C "$STAGE" -cJf "$OUT/bundle.tar.xz" bundle
echo "gpu_bundle: $OUT/bundle.tar.xz ($(du -h "$OUT/bundle.tar.xz" | cut -f1))," \
     "$(ls "$STAGE/bundle/lib" | wc -l) libraries"
