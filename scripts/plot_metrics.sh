#!/usr/bin/env bash
# Turns a run's metrics (the JSON-lines files under RUN_DIR/metrics) into a
# PNG of the training loss and AUC curves of every worker, with the eval AUC
# after each evaluation as points.
#
#   scripts/plot_metrics.sh RUN_DIR [OUT.png]     (default RUN_DIR/metrics.png)
set -euo pipefail
RUN_DIR="${1:?usage: plot_metrics.sh RUN_DIR [OUT.png]}"
OUT="${2:-$RUN_DIR/metrics.png}"
METRICS="$RUN_DIR/metrics"
ls "$METRICS"/worker_*.jsonl >/dev/null 2>&1 ||
  { echo "plot_metrics: no $METRICS/worker_*.jsonl (run with a metrics dir)" >&2; exit 2; }
command -v gnuplot >/dev/null ||
  { echo "plot_metrics: gnuplot missing: run scripts/install_deps.sh" >&2; exit 2; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# JSON lines -> one whitespace-separated table per worker and one for evals.
python3 - "$METRICS" "$TMP" <<'PY'
import glob, json, os, sys
metrics, tmp = sys.argv[1:3]
for path in sorted(glob.glob(os.path.join(metrics, "worker_*.jsonl"))):
    name = os.path.basename(path)[:-len(".jsonl")]
    train = open(os.path.join(tmp, name + ".train"), "w")
    evals = open(os.path.join(tmp, name + ".eval"), "w")
    last_step = 0
    for line in open(path):
        try:
            r = json.loads(line)
        except ValueError:
            continue  # a line being written
        if r.get("type") == "train" and r.get("loss") is not None:
            last_step = r["step"]
            train.write("%d %g %g\n" % (r["step"], r["loss"], r["auc"]))
        elif r.get("type") == "eval" and r.get("auc") is not None:
            evals.write("%d %g %g\n" % (last_step, r["logloss"], r["auc"]))
PY

PLOTS_LOSS=""
PLOTS_AUC=""
for f in "$TMP"/*.train; do
  name="$(basename "$f" .train)"
  PLOTS_LOSS+="'$f' using 1:2 with lines title '$name train loss', "
  PLOTS_AUC+="'$f' using 1:3 with lines title '$name train auc', "
  if [ -s "$TMP/$name.eval" ]; then
    PLOTS_LOSS+="'$TMP/$name.eval' using 1:2 with points pt 7 ps 1.5 title '$name eval logloss', "
    PLOTS_AUC+="'$TMP/$name.eval' using 1:3 with points pt 7 ps 1.5 title '$name eval auc', "
  fi
done
gnuplot <<GP
set terminal png size 1200,500 noenhanced
set output '$OUT'
set multiplot layout 1,2 title 'run $(basename "$RUN_DIR")'
set xlabel 'step'
set key bottom right
set ylabel 'logloss'
plot ${PLOTS_LOSS%, }
set ylabel 'AUC'
plot ${PLOTS_AUC%, }
unset multiplot
GP
echo "plot_metrics: wrote $OUT"
