#!/usr/bin/env bash
# README command 2: installs what is missing, builds, runs every test (what
# CI runs). Extra arguments go to ctest (e.g. -L unit, -R Resume).
#
# The suite runs once with OpenBLAS's own choice of kernels; then the tests
# labelled "blas" (those whose results come from OpenBLAS) run again under a
# second core type, OPENBLAS_CORETYPE=Prescott (SSE3), or the core ps_worker
# would restart with (SkylakeX, Haswell) where OpenBLAS chose one without AVX. Results must not depend on
# which kernels ran (docs/architecture.md, "Numerics"). PS_TEST_SECOND_CORE
# names another core type, or "none" to skip the second pass. Before the
# tests, scripts/lint.sh checks the format and builds with Clang's
# thread-safety analysis (PS_LINT=none skips it). After them, every fuzz
# target (tests/fuzz/) runs PS_FUZZ_CI seconds (default 3) on its corpus,
# built with Clang, libFuzzer, ASan and UBSan in build-fuzz/ (scripts/fuzz.sh;
# PS_FUZZ_CI=none skips it). Last, the unit tests run again built with
# AddressSanitizer and UndefinedBehaviorSanitizer (scripts/sanitize.sh
# address,undefined, in build-asan-ubsan/): PS_SANITIZE_CI=none skips that
# pass, another mode (address, undefined, thread) runs that sanitizer instead.
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
  # OpenBLAS's own choice, and the core ps_worker would restart with (empty
  # when the choice stands; kernels/cpu/blas_core.h decides, for both).
  probe="$(env -u OPENBLAS_CORETYPE "$BUILD/tests/blas_core_probe" --no-restart)"
  chosen="$(sed -n 's/^core=\([^ ]*\).*/\1/p' <<<"$probe")"
  better="$(sed -n 's/^better=//p' <<<"$probe")"
  if [ -n "$better" ]; then
    second="$better"
  elif [ "$chosen" = Prescott ]; then
    second=none
  else
    second=Prescott
  fi
fi
if [ "$second" = none ]; then
  echo "test: no second OpenBLAS core type to test with on this CPU"
else
  echo "test: the OpenBLAS-dependent tests again with OPENBLAS_CORETYPE=$second" \
    "(OpenBLAS chose ${chosen:-a core})"
  OPENBLAS_CORETYPE="$second" ctest --output-on-failure -j "$JOBS" \
    --timeout 600 -L blas "$@"
fi

fuzz="${PS_FUZZ_CI:-3}"
if [ "$fuzz" = none ]; then
  echo "test: fuzz targets skipped (PS_FUZZ_CI=none)"
else
  echo "test: every fuzz target for $fuzz s on its corpus"
  "$ROOT/scripts/fuzz.sh" all "$fuzz"
fi

sanitize="${PS_SANITIZE_CI:-address,undefined}"
if [ "$sanitize" = none ]; then
  echo "test: sanitizer pass skipped (PS_SANITIZE_CI=none)"
else
  echo "test: the unit tests again under the sanitizers ($sanitize)"
  "$ROOT/scripts/sanitize.sh" "$sanitize" -L unit "$@"
fi
