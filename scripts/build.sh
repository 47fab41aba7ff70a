#!/usr/bin/env bash
# Configures and builds into build/ (or $PS_BUILD_DIR). Extra arguments go to
# cmake's configure step, e.g. -DPS_ENABLE_CUDA=OFF. Prints the compiler's
# output only when the build fails.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${PS_BUILD_DIR:-$ROOT/build}"
JOBS="${PS_JOBS:-$(nproc)}"
# ccache: paths under the checkout are hashed relative to it and the build
# folder's path is left out, so a fresh clone elsewhere (CI) reuses the
# objects of an earlier build of the same sources.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$ROOT}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
mkdir -p "$BUILD"
if [ ! -f "$BUILD/CMakeCache.txt" ] || [ $# -gt 0 ]; then
  if ! cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" \
      >"$BUILD/configure.log" 2>&1; then
    cat "$BUILD/configure.log"
    exit 1
  fi
fi
echo "build: compiling in $BUILD with $JOBS jobs"
if ! cmake --build "$BUILD" -j "$JOBS" >"$BUILD/build.log" 2>&1; then
  grep -E "error|Error" -A5 "$BUILD/build.log" | head -80
  echo "build: FAILED (full log: $BUILD/build.log)"
  exit 1
fi
echo "build: ok"
