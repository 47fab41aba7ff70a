#!/usr/bin/env bash
# run_local.sh --resume without --run-dir continues the last run the script
# named itself (runs/LAST), not the folder whose name sorts last (compare.sh
# and bench_e2e.sh put theirs under runs/ too, with names that sort after a
# date). The script runs from a copy in a temporary root with no binaries,
# so each run stops right after choosing its folder; the test reads which.
set -euo pipefail
SRC="$2"
ROOT="$(mktemp -d)"
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/scripts" "$ROOT/configs" "$ROOT/runs"
cp "$SRC/scripts/run_local.sh" "$ROOT/scripts/"
# A config without a generate section: no data to make.
printf 'cluster { num_workers: 1 }\n' >"$ROOT/configs/job.pbtxt"
export PS_SKIP_BUILD=1 PS_BUILD_DIR="$ROOT/no-build"
run() { bash "$ROOT/scripts/run_local.sh" --config "$ROOT/configs/job.pbtxt" "$@" 2>&1 || true; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# No run started by the script yet: --resume says what is missing.
mkdir -p "$ROOT/runs/bench_e2e-1"
out="$(run --resume)"
echo "$out" | grep -q "runs/LAST is missing" || fail "no LAST: $out"

# A run named by the script, then one with --run-dir under runs/ that sorts
# after it: --resume picks the first.
out="$(run)"
named="$(cat "$ROOT/runs/LAST")"
[ -d "$named" ] || fail "runs/LAST does not name a folder: '$named'"
echo "$out" | grep -q "logs in $named" || fail "first run: $out"
run --run-dir "$ROOT/runs/zzz-compare" >/dev/null
[ "$(cat "$ROOT/runs/LAST")" = "$named" ] || fail "--run-dir replaced runs/LAST"
out="$(run --resume)"
echo "$out" | grep -q "logs in $named" || fail "--resume went elsewhere: $out"
echo "PASS"
