#!/usr/bin/env bash
# README command 2: installs what is missing, builds, runs every test (what
# CI runs). Extra arguments go to ctest (e.g. -L unit, -R Resume).
#
# The suite runs once with OpenBLAS's own choice of kernels; then the tests
# labelled "blas" (those whose results come from OpenBLAS) run again under a
# second core type, OPENBLAS_CORETYPE=Prescott (SSE3), or Haswell (AVX2)
# where OpenBLAS already chose a core without AVX. Results must not depend on
# which kernels ran (docs/architecture.md, "Numerics"). PS_TEST_SECOND_CORE
# names another core type, or "none" to skip the second pass. Before the
# tests, scripts/lint.sh checks the format and builds with Clang's
# thread-safety analysis (PS_LINT=none skips it).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${PS_BUILD_DIR:-$ROOT/build}"
"$ROOT/scripts/install_deps.sh"
"$ROOT/scripts/build.sh"
if [ "${PS_LINT:-all}" != none ]; then
  "$ROOT/scripts/lint.sh"
fi
cd "$BUILD"
JOBS="${PS_TEST_JOBS:-2}"
ctest --output-on-failure -j "$JOBS" --timeout 600 "$@"

second="${PS_TEST_SECOND_CORE:-}"
if [ -z "$second" ]; then
  chosen="$(env -u OPENBLAS_CORETYPE "$BUILD/tests/blas_core_probe" --no-restart |
            sed -n 's/^core=\([^ ]*\).*/\1/p')"
  case "$chosen" in
    Prescott|Core2|Penryn|Dunnington|Nehalem|Atom|Katmai|Coppermine|Northwood|\
    Banias|Opteron|Opteron_SSE3|Barcelona|Bobcat|Nano|"")
      if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
        second=Haswell
      else
        second=none
      fi ;;
    *) second=Prescott ;;
  esac
fi
if [ "$second" = none ]; then
  echo "test: no second OpenBLAS core type to test with on this CPU"
else
  echo "test: the OpenBLAS-dependent tests again with OPENBLAS_CORETYPE=$second" \
    "(OpenBLAS chose ${chosen:-a core})"
  OPENBLAS_CORETYPE="$second" ctest --output-on-failure -j "$JOBS" \
    --timeout 600 -L blas "$@"
fi
