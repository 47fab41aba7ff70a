#!/usr/bin/env bash
# Runs a libFuzzer target of tests/fuzz/ (README, "Fuzzing"):
#   scripts/fuzz.sh TARGET SECONDS [--merge] [LIBFUZZER_FLAG...]
#   scripts/fuzz.sh all SECONDS [--merge]     every target in turn
#   scripts/fuzz.sh list                      the targets
# Builds the targets first when needed: Clang with libFuzzer, ASan and
# UBSan (-DPS_FUZZ=ON) in build-fuzz/ (or $PS_FUZZ_BUILD_DIR), $PS_JOBS
# compile jobs (default: all cores).
#
# A target runs on its working corpus, build-fuzz/corpus/TARGET/: the
# repository's corpus tests/fuzz/corpus/TARGET/ copied in, plus what earlier
# runs found (so runs add up). The repository's corpus changes only when
# asked: with --merge, the working inputs that add coverage are merged into
# it (-merge=1; review and commit them). One target runs at a time, on one
# core. Scratch files of the targets go to /dev/shm when there is one.
#
# Prints per target the runs, exec/s and coverage (cov: edges, ft:
# features) from libFuzzer's final stats. A crash, sanitizer report, leak,
# timeout (> 10 s for one input) or out-of-memory (> 2 GiB) stops the
# target: its input is saved as build-fuzz/artifacts/TARGET/crash-* (or
# leak-, timeout-, oom-), the log's end is printed, and the script exits 1
# (for `all`, after the other targets ran). Reproduce with
#   build-fuzz/tests/fuzz/fuzz_TARGET build-fuzz/artifacts/TARGET/crash-...
# and once fixed, copy the input into the corpus as a regression case.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${PS_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
CORPORA="$ROOT/tests/fuzz/corpus"

targets() { ls "$CORPORA"; }

if [ $# -ge 1 ] && [ "$1" = list ]; then
  targets
  exit 0
fi
if [ $# -lt 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 TARGET|all SECONDS [--merge] [LIBFUZZER_FLAG...]" >&2
  echo "targets: $(targets | tr '\n' ' ')" >&2
  exit 2
fi
WHICH="$1"
SECONDS_EACH="$2"
shift 2
MERGE=0
if [ $# -gt 0 ] && [ "$1" = --merge ]; then
  MERGE=1
  shift
fi
if [ "$WHICH" = all ]; then
  mapfile -t RUN < <(targets)
  BUILD_TARGET=ps_fuzzers
else
  if [ ! -d "$CORPORA/$WHICH" ]; then
    echo "fuzz: no target '$WHICH' (targets: $(targets | tr '\n' ' '))" >&2
    exit 2
  fi
  RUN=("$WHICH")
  BUILD_TARGET="fuzz_$WHICH"
fi

# Build (quietly; the log is printed only when it fails).
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$ROOT}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"
mkdir -p "$BUILD"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  if ! cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DPS_FUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      >"$BUILD/configure.log" 2>&1; then
    cat "$BUILD/configure.log"
    exit 1
  fi
fi
if ! cmake --build "$BUILD" -j "${PS_JOBS:-$(nproc)}" --target "$BUILD_TARGET" \
    >"$BUILD/build.log" 2>&1; then
  grep -E "error|Error" -A5 "$BUILD/build.log" | head -80
  echo "fuzz: build FAILED (full log: $BUILD/build.log)"
  exit 1
fi

if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  export TMPDIR=/dev/shm
fi
failed=()
for target in "${RUN[@]}"; do
  binary="$BUILD/tests/fuzz/fuzz_$target"
  corpus="$BUILD/corpus/$target"
  artifacts="$BUILD/artifacts/$target"
  log="$BUILD/logs/$target.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  cp "$CORPORA/$target"/* "$corpus"/
  status=0
  "$binary" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$@" "$corpus" \
    >"$log" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
  # The last status line: "#N DONE cov: C ft: F corp: K/B ..." (or the
  # last "pulse"/"NEW" line of a run that stopped).
  last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
  corp="$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")"
  echo "fuzz: $target: ${SECONDS_EACH} s, ${runs:-?} runs, ${speed:-?} exec/s," \
    "cov ${cov:-?} ft ${ft:-?}, corpus ${corp:-?} inputs"
  if [ "$status" -ne 0 ]; then
    tail -40 "$log"
    echo "fuzz: $target FAILED (exit $status); input saved in $artifacts/," \
      "log $log"
    failed+=("$target")
    continue
  fi
  if [ "$MERGE" = 1 ]; then
    before="$(ls "$CORPORA/$target" | wc -l)"
    "$binary" -merge=1 "$CORPORA/$target" "$corpus" >"$log.merge" 2>&1 || {
      tail -20 "$log.merge"
      echo "fuzz: $target: merge FAILED"
      failed+=("$target")
      continue
    }
    after="$(ls "$CORPORA/$target" | wc -l)"
    echo "fuzz: $target: merged $((after - before)) inputs into" \
      "tests/fuzz/corpus/$target"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
