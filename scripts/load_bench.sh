#!/usr/bin/env bash
# Builds and runs the load benchmark (tests/bench/load_bench.cc): 64 honest
# clients pulling and pushing against 2 in-process servers for 60 s, then
# the same with a client sending garbage alongside; prints its JSON object.
#
#   scripts/load_bench.sh [--seconds N] [OUT_DIR] [load_bench flags...]
#
# Other flags go to load_bench as they are (--clients, --servers,
# --key_dist, --phases clean|garbage|both, --garbage_threads, ...; see the
# top of tests/bench/load_bench.cc). OUT_DIR (default runs/load-<date>)
# receives load.json and the servers' log, load_bench.log. The build
# directory is $PS_BUILD_DIR (default build/); only load_bench is built,
# with $PS_JOBS jobs (default: nproc). Exit status: load_bench's (non-zero
# when a phase had an error or a gradient was lost or applied twice).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${PS_BUILD_DIR:-$ROOT/build}"
JOBS="${PS_JOBS:-$(nproc)}"

OUT=""
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    --seconds) ARGS+=("--seconds=$2"); shift ;;
    -*) ARGS+=("$1") ;;
    *) OUT="$1" ;;
  esac
  shift
done
OUT="${OUT:-$ROOT/runs/load-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT" "$BUILD"

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  if ! cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      >"$BUILD/configure.log" 2>&1; then
    cat "$BUILD/configure.log"
    exit 1
  fi
fi
echo "load_bench: building in $BUILD with $JOBS jobs" >&2
if ! cmake --build "$BUILD" -j "$JOBS" --target load_bench \
    >"$BUILD/load-bench-build.log" 2>&1; then
  grep -E "error|Error" -A5 "$BUILD/load-bench-build.log" | head -80 >&2 || true
  echo "load_bench: build FAILED (full log: $BUILD/load-bench-build.log)" >&2
  exit 1
fi

echo "load_bench: running (log: $OUT/load_bench.log)" >&2
rc=0
GLOG_logtostderr=1 GLOG_minloglevel="${GLOG_minloglevel:-1}" \
  "$BUILD/tests/load_bench" \
  ${ARGS[@]+"${ARGS[@]}"} >"$OUT/load.json" 2>"$OUT/load_bench.log" || rc=$?
python3 -m json.tool --indent 1 "$OUT/load.json" || cat "$OUT/load.json"
[ "$rc" = 0 ] || echo "load_bench: FAILED (exit $rc; see $OUT/load_bench.log)" >&2
exit "$rc"
