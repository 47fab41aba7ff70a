#!/usr/bin/env bash
# Trains every model of a data set in every training mode on the local
# cluster (scripts/run_local.sh, 2 servers + 2 workers) and prints a
# markdown table: model x mode -> eval AUC, logloss, examples/s.
#
#   scripts/compare.sh criteo|movielens|avazu|generated [OUT_DIR] [--models "dnn lr"] [--modes "ASYNC SYNC"]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DATASET="${1:?usage: compare.sh criteo|movielens|avazu|generated [OUT_DIR]}"
shift
OUT="runs/compare-$DATASET-$(date +%Y%m%d-%H%M%S)"
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then OUT="$1"; shift; fi
MODELS="lr dnn fm wide_deep deepfm dcn"
MODES="ASYNC SYNC BOUNDED GEO"
while [ $# -gt 0 ]; do
  case "$1" in
    --models) MODELS="$2"; shift 2 ;;
    --modes) MODES="$2"; shift 2 ;;
    *) echo "compare: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
"$ROOT/scripts/install_deps.sh"
[ "${PS_SKIP_BUILD:-0}" = 1 ] || "$ROOT/scripts/build.sh" >/dev/null
RESULTS="$OUT/results.tsv"
printf "model\tmode\tauc\tlogloss\texamples_per_sec\n" >"$RESULTS"
for model in $MODELS; do
  src="$ROOT/configs/${DATASET}_${model}.pbtxt"
  [ -f "$src" ] || { echo "compare: no $src, skipped" >&2; continue; }
  for mode in $MODES; do
    run="$OUT/$model-$mode"
    mkdir -p "$run"
    # Same folder as the original so its relative paths still hold.
    cfg="$ROOT/configs/.compare-${DATASET}-${model}-${mode}.pbtxt"
    sed -E "s/^( *mode:) *[A-Z]+/\1 $mode/" "$src" >"$cfg"
    if PS_SKIP_BUILD=1 "$ROOT/scripts/run_local.sh" --config "$cfg" --run-dir "$run" \
        >"$run/run_local.out" 2>&1; then
      python3 - "$run/summary.json" "$model" "$mode" >>"$RESULTS" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print("%s\t%s\t%.4f\t%.4f\t%.0f" % (sys.argv[2], sys.argv[3], s["auc"], s["logloss"], s["examples_per_sec"]))
PY
    else
      printf "%s\t%s\tfailed\tfailed\t-\n" "$model" "$mode" >>"$RESULTS"
    fi
    rm -f "$cfg"
    tail -1 "$RESULTS"
  done
done
python3 - "$RESULTS" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
modes = []
for r in rows:
    if r[1] not in modes: modes.append(r[1])
print("| model | " + " | ".join(modes) + " |")
print("| --- |" + " --- |" * len(modes))
for model in dict.fromkeys(r[0] for r in rows):
    cells = []
    for m in modes:
        r = [x for x in rows if x[0] == model and x[1] == m]
        cells.append("%s / %s / %s" % (r[0][2], r[0][3], r[0][4]) if r else "")
    print("| %s | %s |" % (model, " | ".join(cells)))
print("\n(each cell: eval AUC / logloss / examples per second)")
PY
