#!/usr/bin/env bash
# End-to-end training speed, as users run it: the default job
# (configs/generated_dnn.pbtxt: DNN, 39 slots of dim 8, 64-32, Adagrad,
# batch 512) and its LR twin (the same config with model.type LR and the
# table at dim 1) on the same generated rows, each through
# scripts/run_local.sh (2 servers + 2 workers, parsing included).
#
#   scripts/bench_e2e.sh [--out DIR] [--repeat K] [--rows N]
#                        [--transport unix|tcp|both] [--torch]
#
#   --out DIR        where runs and bench.json go (default: runs/bench_e2e-<time>)
#   --repeat K       runs per model and transport; figures are medians (default 3)
#   --rows N         training rows to generate (default: the config's, 2 M)
#   --transport T    how workers reach the servers: tcp (loopback,
#                    run_local's default), unix (the colocated fast path), or
#                    both (default: tcp)
#   --torch          also train the same models in PyTorch (scripts/
#                    torch_baseline.py: eager CPU, 2 threads, one process,
#                    parsing excluded) and report the ratio measured in the
#                    same run. torch, numpy and pandas are installed from PyPI
#                    into $PS_TORCH_VENV (default: .venv-torch in the
#                    repository) the first time; never needed by the tests.
#
# Prints, and writes to DIR/bench.json, per model and transport:
#   examples_per_sec (median; all runs listed), eval AUC,
#   per worker and step (ms, averaged over workers and runs): read (parse),
#     dedup, pull (request to answer, on the prefetch thread), input_wait
#     (what the training thread waited for the next batch), compute, push
#     (merge, send, wait for room);
#   worker CPU microseconds per example, and server CPU microseconds per
#   sparse row pulled or pushed (each process's own CPU time).
# Set PS_SKIP_BUILD=1 to use the binaries already built.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT=""
REPEAT=3
ROWS=""
TRANSPORT=tcp
TORCH=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    --rows) ROWS="$2"; shift 2 ;;
    --transport) TRANSPORT="$2"; shift 2 ;;
    --torch) TORCH=1; shift ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "bench_e2e: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$REPEAT" in ''|*[!0-9]*|0) echo "bench_e2e: --repeat needs a positive count, got '$REPEAT'" >&2; exit 2 ;; esac
if [ -n "$ROWS" ]; then
  case "$ROWS" in *[!0-9]*|0) echo "bench_e2e: --rows needs a positive count, got '$ROWS'" >&2; exit 2 ;; esac
fi
case "$TRANSPORT" in
  unix|tcp) TRANSPORTS=("$TRANSPORT") ;;
  both) TRANSPORTS=(unix tcp) ;;
  *) echo "bench_e2e: --transport must be unix, tcp or both, got '$TRANSPORT'" >&2; exit 2 ;;
esac
[ -n "$OUT" ] || OUT="$ROOT/runs/bench_e2e-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
BUILD="${PS_BUILD_DIR:-$ROOT/build}"

if [ "${PS_SKIP_BUILD:-0}" != 1 ]; then
  "$ROOT/scripts/install_deps.sh"
  "$ROOT/scripts/build.sh"
fi

# The two configs: the default job, and its LR twin; --rows rewrites
# train_rows in both.
python3 - "$ROOT/configs/generated_dnn.pbtxt" "$OUT" "$ROWS" <<'PY'
import re, sys
src, out, rows = sys.argv[1:4]
text = open(src).read()
if rows:
    text, n = re.subn(r"train_rows:\s*\d+", "train_rows: %s" % rows, text)
    assert n == 1, "no train_rows in " + src
open(out + "/dnn.pbtxt", "w").write(text)
lr = text.replace("type: DNN", "type: LR")
lr = re.sub(r"\bdim:\s*\d+", "dim: 1", lr)
lr = re.sub(r"\n\s*hidden_units:\s*\d+", "", lr)
assert "type: LR" in lr
open(out + "/lr.pbtxt", "w").write(lr)
PY

# One data set for every run (run_local generates only where there is none).
if [ ! -f "$OUT/data/oracle.json" ]; then
  echo "bench_e2e: generating data into $OUT/data"
  "$BUILD/tools/ps_datagen" --config "$OUT/dnn.pbtxt" --data_dir "$OUT/data" \
    >"$OUT/datagen.log" 2>&1 || { cat "$OUT/datagen.log"; exit 1; }
fi

for model in dnn lr; do
  for transport in "${TRANSPORTS[@]}"; do
    for ((i = 1; i <= REPEAT; i++)); do
      run="$OUT/$model-$transport-$i"
      rm -rf "$run"
      mkdir -p "$run"
      ln -s "$OUT/data" "$run/data"
      echo "bench_e2e: $model over $transport, run $i of $REPEAT"
      if ! PS_SKIP_BUILD=1 PS_TRANSPORT="$transport" \
          "$ROOT/scripts/run_local.sh" --config "$OUT/$model.pbtxt" \
          --run-dir "$run" >"$run/run_local.out" 2>&1; then
        tail -n 20 "$run/run_local.out" >&2
        echo "bench_e2e: $model over $transport failed (logs in $run)" >&2
        exit 1
      fi
      grep -E "eval AUC|trained on" "$run/run_local.out" | sed 's/^/  /'
    done
  done
done

if [ "$TORCH" = 1 ]; then
  VENV="${PS_TORCH_VENV:-$ROOT/.venv-torch}"
  if ! "$VENV/bin/python" -c "import torch, numpy, pandas" 2>/dev/null; then
    echo "bench_e2e: installing torch, numpy and pandas into $VENV (from PyPI)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet torch numpy pandas
  fi
  TRAIN_FILE="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["train_file"])' "$OUT/data/oracle.json")"
  EVAL_FILE="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["eval_file"])' "$OUT/data/oracle.json")"
  for model in dnn lr; do
    for ((i = 1; i <= REPEAT; i++)); do
      echo "bench_e2e: PyTorch $model, run $i of $REPEAT"
      "$VENV/bin/python" -W ignore "$ROOT/scripts/torch_baseline.py" \
        --train "$TRAIN_FILE" --eval "$EVAL_FILE" --model "$model" \
        --threads 2 >"$OUT/torch-$model-$i.json" 2>"$OUT/torch-$model-$i.log" ||
        { cat "$OUT/torch-$model-$i.log" >&2; exit 1; }
      sed 's/^/  /' "$OUT/torch-$model-$i.json"
    done
  done
fi

python3 - "$OUT" "$REPEAT" "$TORCH" "${TRANSPORTS[@]}" <<'PY'
import glob, json, os, statistics, sys
out, repeat, torch = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
transports = sys.argv[4:]
stages = ["read", "dedup", "pull", "input_wait", "compute", "push"]

def last_server_record(path):
    rec = None
    for line in open(path):
        r = json.loads(line)
        if r.get("type") == "server":
            rec = r
    return rec

report = {"machine": {"cpus": os.cpu_count()}, "models": {}}
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            report["machine"]["cpu"] = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
for model in ["dnn", "lr"]:
    entry = {}
    for transport in transports:
        rates, aucs, w_cpu, s_cpu = [], [], [], []
        st = {k: [] for k in stages}
        for i in range(1, repeat + 1):
            run = os.path.join(out, "%s-%s-%d" % (model, transport, i))
            summary = json.load(open(os.path.join(run, "summary.json")))
            rates.append(summary["examples_per_sec"])
            aucs.append(summary["auc"])
            examples, cpu = 0, 0.0
            for wf in sorted(glob.glob(os.path.join(run, "worker_*.json"))):
                w = json.load(open(wf))
                examples += w["examples"]
                cpu += w["cpu_seconds"]
                for k in stages:
                    st[k].append(w["stage_ms_per_step"][k])
            w_cpu.append(1e6 * cpu / max(examples, 1))
            rows, cpu = 0, 0.0
            for sf in sorted(glob.glob(os.path.join(run, "metrics", "server_*.jsonl"))):
                r = last_server_record(sf)
                rows += r["rows_pulled"] + r["rows_pushed"]
                cpu += r["cpu_seconds"]
            s_cpu.append(1e6 * cpu / max(rows, 1))
        entry[transport] = {
            "examples_per_sec": round(statistics.median(rates)),
            "examples_per_sec_runs": [round(r) for r in rates],
            "auc": round(statistics.median(aucs), 4),
            "worker_ms_per_step": {k: round(statistics.mean(v), 3) for k, v in st.items()},
            "worker_cpu_us_per_example": round(statistics.median(w_cpu), 2),
            "server_cpu_us_per_row": round(statistics.median(s_cpu), 3),
        }
    if torch:
        runs = [json.load(open(os.path.join(out, "torch-%s-%d.json" % (model, i))))
                for i in range(1, repeat + 1)]
        t_rate = statistics.median(r["examples_per_sec"] for r in runs)
        entry["torch"] = {
            "examples_per_sec": round(t_rate),
            "examples_per_sec_runs": [round(r["examples_per_sec"]) for r in runs],
            "auc": round(statistics.median(r["auc"] for r in runs), 4),
            "torch_version": runs[0]["torch_version"],
        }
        for transport in transports:
            entry[transport]["ratio_to_torch"] = round(
                entry[transport]["examples_per_sec"] / t_rate, 2)
    report["models"][model] = entry
with open(os.path.join(out, "bench.json"), "w") as f:
    json.dump(report, f, indent=2)
    f.write("\n")
print("")
print("== bench_e2e (%s) ==" % out)
for model, entry in report["models"].items():
    for name, e in entry.items():
        line = "  %-3s %-5s %8d ex/s  auc %.4f" % (model, name, e["examples_per_sec"], e["auc"])
        if "worker_cpu_us_per_example" in e:
            line += "  worker %.2f us/ex  server %.3f us/row" % (
                e["worker_cpu_us_per_example"], e["server_cpu_us_per_row"])
            line += "  ms/step " + " ".join(
                "%s %.2f" % (k, v) for k, v in e["worker_ms_per_step"].items())
        if "ratio_to_torch" in e:
            line += "  x%.2f torch" % e["ratio_to_torch"]
        print(line)
print("  details       %s/bench.json" % out)
PY
