#!/usr/bin/env bash
# Builds every non-CUDA target with a sanitizer (Clang) and runs the suite:
#
#   scripts/sanitize.sh address|undefined|thread|address,undefined [ctest args]
#
# address is AddressSanitizer with LeakSanitizer, undefined UndefinedBehavior-
# Sanitizer (a finding aborts, so it fails the test), thread ThreadSanitizer;
# address,undefined both of the first two in one build. Each builds into its
# own folder, build-asan, build-ubsan, build-tsan or build-asan-ubsan (or
# $PS_SANITIZE_BUILD_DIR), reused between runs. Script tests (chaos.py, the
# deploy tests) run the binaries of the build folder ctest runs in, so they
# run sanitized too, and the options below reach them through the
# environment. Extra arguments go to ctest (e.g. -L unit, -R Resume);
# PS_TEST_JOBS sets ctest's -j (default 2), PS_JOBS the build's.
#
# The libraries we link (Debian's gRPC, Protobuf, Abseil, RocksDB, OpenBLAS)
# are not instrumented: what that needs is in scripts/sanitizers/, each entry
# with its reason.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SUPP="$ROOT/scripts/sanitizers"
usage() { sed -n '2,4p' "$0"; exit 2; }
[ $# -ge 1 ] || usage
MODE="$1"
shift
case "$MODE" in
  address) NAME=asan ;;
  undefined) NAME=ubsan ;;
  thread) NAME=tsan ;;
  address,undefined | undefined,address) MODE=address,undefined; NAME=asan-ubsan ;;
  *) usage ;;
esac
BUILD="${PS_SANITIZE_BUILD_DIR:-$ROOT/build-$NAME}"

# halt_on_error: the first finding ends the process with a non-zero exit, so
# the test that ran it fails (a server started by a test fails that test
# through its exit code or its missing answers). Exported before the build,
# which runs the test binaries to list their tests.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$SUPP/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# OpenBLAS's thread server is left as it is under TSan: its threads write
# only through uninstrumented code (nothing recorded, nothing reported), and
# the backend sets its thread count (ps_worker --blas_threads, default 1).
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$SUPP/tsan.supp:print_suppressions=0${TSAN_OPTIONS:+:$TSAN_OPTIONS}"

echo "sanitize: $MODE build in $BUILD"
CC=clang CXX=clang++ PS_BUILD_DIR="$BUILD" "$ROOT/scripts/build.sh" \
  -DPS_ENABLE_CUDA=OFF -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DPS_SANITIZE="$MODE"

cd "$BUILD"
JOBS="${PS_TEST_JOBS:-2}"
echo "sanitize: running the suite under $MODE"
ctest --output-on-failure -j "$JOBS" --timeout 1800 "$@"
