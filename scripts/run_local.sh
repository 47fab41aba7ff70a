#!/usr/bin/env bash
# README command 1: installs what is missing, builds, generates data when the
# config asks for it, starts N servers and M workers on free loopback ports
# (separate processes), trains, evaluates, stops everything, and prints a
# summary. Every process's log and DIR/summary.json stay in the run folder.
#
#   scripts/run_local.sh [--config FILE] [--run-dir DIR] [--servers N]
#                        [--workers M] [--resume] [--metrics-port P]
#
# Checkpoints go to DIR/ckpt (at the end of training, on `ps_ctl checkpoint`,
# and every checkpoint.every_steps / every_minutes of the config), TIERED
# tables' RocksDB directories to DIR/tables.
# --resume: continue a job from the newest complete checkpoint in DIR/ckpt
# (every ps_server and ps_worker gets --resume), in DIR (default: the
# folder of the last run started without --run-dir, which runs/LAST names),
# reusing its generated data (positions name the data files) and appending
# to its logs.
# --metrics-port P: Prometheus metrics at http://127.0.0.1:P+i/metrics for
# server i and P+N+j for worker j (N servers).
# After the workers end the servers exit by themselves once the final
# checkpoint is written; they get SIGTERM only when silent for
# PS_STOP_IDLE_SEC (120) or still running after PS_STOP_GRACE_SEC (600).
# Ctrl-C stops everything at once.
# Workers reach the servers over TCP on loopback; PS_TRANSPORT=unix puts
# them on the colocated fast path instead (Unix-domain sockets in a fresh
# folder under /tmp: same calls, no TCP stack), which measured no faster on
# this 2-core machine (README, Benchmarks).
# Exit status: 0 when every worker and server succeeded; 1 when any failed
# (each is named with its exit code and the last error line of its log);
# 2 for bad usage; 130 when interrupted.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONFIG="$ROOT/configs/generated_dnn.pbtxt"
RUN_DIR=""
NUM_SERVERS=2
NUM_WORKERS=2
RESUME=0
METRICS_PORT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG="$2"; shift 2 ;;
    --run-dir) RUN_DIR="$2"; shift 2 ;;
    --servers) NUM_SERVERS="$2"; shift 2 ;;
    --workers) NUM_WORKERS="$2"; shift 2 ;;
    --resume) RESUME=1; shift ;;
    --metrics-port) METRICS_PORT="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "run_local: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ -f "$CONFIG" ] || { echo "run_local: no config file '$CONFIG'" >&2; exit 2; }
CONFIG="$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")"
if [ "$RESUME" = 1 ]; then
  if [ -z "$RUN_DIR" ]; then
    # The folder of the last run this script named itself (runs/LAST), not
    # whichever sorts last: compare.sh and bench_e2e.sh put theirs there too.
    RUN_DIR="$(cat "$ROOT/runs/LAST" 2>/dev/null || true)"
    [ -n "$RUN_DIR" ] || { echo "run_local: --resume: no run started without --run-dir under $ROOT/runs (runs/LAST is missing; name the folder with --run-dir)" >&2; exit 2; }
  fi
  [ -d "$RUN_DIR" ] || { echo "run_local: --resume: no run folder '$RUN_DIR'" >&2; exit 2; }
fi
NAMED_HERE=0
if [ -z "$RUN_DIR" ]; then
  RUN_DIR="$ROOT/runs/$(date +%Y%m%d-%H%M%S)"
  NAMED_HERE=1
fi
mkdir -p "$RUN_DIR"
RUN_DIR="$(cd "$RUN_DIR" && pwd)"
# What a later --resume without --run-dir continues.
[ "$NAMED_HERE" = 0 ] || echo "$RUN_DIR" >"$ROOT/runs/LAST"
BUILD="${PS_BUILD_DIR:-$ROOT/build}"

# PS_SKIP_BUILD=1: use the binaries already in $PS_BUILD_DIR (scripts that
# run many jobs build once).
if [ "${PS_SKIP_BUILD:-0}" != 1 ]; then
  "$ROOT/scripts/install_deps.sh"
  "$ROOT/scripts/build.sh"
fi

PIDS=()
TAIL_PID=""
SOCKET_DIR=""
cleanup() {
  [ -n "$TAIL_PID" ] && kill "$TAIL_PID" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -z "$SOCKET_DIR" ] || rm -rf "$SOCKET_DIR"
}
trap 'echo "run_local: interrupted, stopping the cluster"; cleanup; exit 130' INT TERM

DATA_DIR="$RUN_DIR/data"
if grep -Eq '^[[:space:]]*generate[[:space:]]*\{' "$CONFIG"; then
  # Generated once per run folder; a resumed job must read the same files.
  if [ "$RESUME" = 1 ] && [ ! -f "$DATA_DIR/oracle.json" ]; then
    echo "run_local: --resume: $RUN_DIR has no generated data ($DATA_DIR/oracle.json); generating it again" >&2
  fi
  if [ ! -f "$DATA_DIR/oracle.json" ]; then
    echo "run_local: generating data into $DATA_DIR"
    "$BUILD/tools/ps_datagen" --config "$CONFIG" --data_dir "$DATA_DIR" \
      >"$RUN_DIR/datagen.log" 2>&1 || { cat "$RUN_DIR/datagen.log"; exit 1; }
  fi
fi

PORTS=$(python3 - "$NUM_SERVERS" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(",".join("127.0.0.1:%d" % s.getsockname()[1] for s in socks))
PY
)
echo "run_local: $NUM_SERVERS servers ($PORTS), $NUM_WORKERS workers, logs in $RUN_DIR"
# Checkpoints go to the run folder: at the end of training, on `ps_ctl
# checkpoint`, and as often as the config's checkpoint section asks.
COMMON=(--config "$CONFIG" --servers "$PORTS" --num_workers "$NUM_WORKERS"
        --checkpoint_dir "$RUN_DIR/ckpt")
case "${PS_TRANSPORT:-tcp}" in
  unix)
    # Short and private: a socket path has at most 107 bytes.
    SOCKET_DIR="$(mktemp -d /tmp/ps-sock.XXXXXX)"
    COMMON+=(--local_socket_dir "$SOCKET_DIR") ;;
  tcp) ;;
  *) echo "run_local: PS_TRANSPORT must be unix or tcp, got '$PS_TRANSPORT'" >&2; exit 2 ;;
esac
[ "$RESUME" = 1 ] && COMMON+=(--resume)
# A fresh run truncates the logs and metrics; a resumed one appends to them.
start_log() {
  if [ "$RESUME" = 1 ]; then
    echo "== run_local: resumed $(date) ==" >>"$1"
  else
    : >"$1"
  fi
}
START=$(date +%s.%N)
for ((i = 0; i < NUM_SERVERS; i++)); do
  [ "$RESUME" = 1 ] || rm -f "$RUN_DIR/metrics/server_$i.jsonl"
  start_log "$RUN_DIR/server_$i.log"
  METRICS=()
  [ -z "$METRICS_PORT" ] || METRICS=(--metrics_address "127.0.0.1:$((METRICS_PORT + i))")
  "$BUILD/server/ps_server" "${COMMON[@]}" --rank "$i" "${METRICS[@]}" \
    --metrics_dir "$RUN_DIR/metrics" --storage_dir "$RUN_DIR/tables" >>"$RUN_DIR/server_$i.log" 2>&1 &
  PIDS+=($!)
done
WORKER_PIDS=()
for ((j = 0; j < NUM_WORKERS; j++)); do
  rm -f "$RUN_DIR/worker_$j.json"
  [ "$RESUME" = 1 ] || rm -f "$RUN_DIR/metrics/worker_$j.jsonl"
  start_log "$RUN_DIR/worker_$j.log"
  # Progress shows this run's lines only.
  [ "$j" != 0 ] || W0_FROM=$(( $(wc -l <"$RUN_DIR/worker_0.log") + 1 ))
  METRICS=()
  [ -z "$METRICS_PORT" ] ||
    METRICS=(--metrics_address "127.0.0.1:$((METRICS_PORT + NUM_SERVERS + j))")
  "$BUILD/worker/ps_worker" "${COMMON[@]}" --rank "$j" --data_dir "$DATA_DIR" "${METRICS[@]}" \
    --result_file "$RUN_DIR/worker_$j.json" --metrics_dir "$RUN_DIR/metrics" \
    >>"$RUN_DIR/worker_$j.log" 2>&1 &
  PIDS+=($!)
  WORKER_PIDS+=($!)
done
# Progress: worker 0's log lines (tail ends with worker 0).
tail --pid="${WORKER_PIDS[0]}" -n "+$W0_FROM" -F "$RUN_DIR/worker_0.log" 2>/dev/null |
  grep --line-buffered -E "step|eval:|failed|rror" | sed -u 's/^[^]]*] /  /' &
TAIL_PID=$!

# The last error line of a log (glog E/F lines; else its last line), without
# glog's prefix.
last_error() {
  local line
  line="$(grep -a -E '^[EF][0-9]{4}' "$1" | tail -1 || true)"
  [ -n "$line" ] || line="$(tail -1 "$1" || true)"
  echo "${line#*] }"
}
FAILED=()
for j in "${!WORKER_PIDS[@]}"; do
  rc=0
  wait "${WORKER_PIDS[$j]}" || rc=$?
  [ "$rc" -eq 0 ] || FAILED+=("worker $j (exit $rc): $(last_error "$RUN_DIR/worker_$j.log")")
done
# The coordinator stops the servers itself once every worker finished and the
# final checkpoint is written, which takes minutes for big tables: a SIGTERM
# before would lose it. So wait for them to exit on their own while they show
# progress (some server's log grew within PS_STOP_IDLE_SEC, default 120 s;
# servers log stats every 30 s) and at most PS_STOP_GRACE_SEC (default 600 s),
# then SIGTERM the rest, naming them.
wait_for_servers() {
  local grace="${PS_STOP_GRACE_SEC:-600}" idle="${PS_STOP_IDLE_SEC:-120}"
  local start=$SECONDS last_growth=$SECONDS sizes="" now reason i
  local alive=()
  while :; do
    alive=()
    for ((i = 0; i < NUM_SERVERS; i++)); do
      if kill -0 "${PIDS[$i]}" 2>/dev/null; then alive+=("$i"); fi
    done
    [ ${#alive[@]} -gt 0 ] || return 0
    now=$(stat -c %s "$RUN_DIR"/server_*.log 2>/dev/null | tr '\n' ' ' || true)
    if [ "$now" != "$sizes" ]; then sizes="$now"; last_growth=$SECONDS; fi
    if ((SECONDS - start >= grace)); then
      reason="still running ${grace} s after the workers ended (PS_STOP_GRACE_SEC)"
      break
    fi
    if ((SECONDS - last_growth >= idle)); then
      reason="silent for ${idle} s after the workers ended (PS_STOP_IDLE_SEC)"
      break
    fi
    sleep 0.2
  done
  for i in "${alive[@]}"; do
    echo "run_local: server $i (pid ${PIDS[$i]}) $reason; sending SIGTERM. Its last log line:" >&2
    tail -n 1 "$RUN_DIR/server_$i.log" | sed 's/^/  /' >&2
  done
  return 1
}
wait_for_servers || true
# A server exits 3 when a worker failed. One still running now is stopped by
# cleanup (SIGTERM, exit 0) and not counted; wait_for_servers named it.
for i in $(seq 0 $((NUM_SERVERS - 1))); do
  pid="${PIDS[$i]}"
  if ! kill -0 "$pid" 2>/dev/null; then
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || FAILED+=("server $i (exit $rc): $(last_error "$RUN_DIR/server_$i.log")")
  fi
done
END=$(date +%s.%N)
cleanup
trap - INT TERM
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "run_local: FAILED (logs in $RUN_DIR):" >&2
  for f in "${FAILED[@]}"; do echo "  $f" >&2; done
  exit 1
fi

python3 - "$RUN_DIR" "$NUM_WORKERS" "$NUM_SERVERS" "$START" "$END" "$CONFIG" <<'PY'
import json, os, sys
run, workers, servers, start, end, config = sys.argv[1:7]
results = [json.load(open(os.path.join(run, "worker_%d.json" % j))) for j in range(int(workers))]
w0 = results[0]
examples = sum(r["examples"] for r in results)
train_secs = max(r["train_seconds"] for r in results)
summary = {
    "config": config,
    "num_servers": int(servers),
    "num_workers": int(workers),
    "auc": w0.get("eval_auc"),
    "logloss": w0.get("eval_logloss"),
    "calibration": w0.get("eval_calibration"),
    "eval_examples": w0.get("eval_examples"),
    "train_auc": sum(r["train_auc"] * r["examples"] for r in results) / max(examples, 1),
    "examples": examples,
    "examples_per_sec": examples / max(train_secs, 1e-9),
    "bad_lines": sum(r["bad_lines"] for r in results),
    "elapsed_sec": float(end) - float(start),
}
oracle = os.path.join(run, "data", "oracle.json")
if os.path.exists(oracle):
    o = json.load(open(oracle))
    summary["oracle_auc"] = o.get("oracle_auc")
    summary["oracle_logloss"] = o.get("oracle_logloss")
    if "train_distinct_keys" in o:
        summary["train_distinct_keys"] = o["train_distinct_keys"]
with open(os.path.join(run, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
    f.write("\n")
def fmt(v, spec=".4f"):
    return format(v, spec) if isinstance(v, (int, float)) else "n/a"
print("")
print("== run summary (%s) ==" % os.path.basename(config))
print("  eval AUC      %s   (oracle %s)" % (fmt(summary["auc"]), fmt(summary.get("oracle_auc"))))
print("  eval logloss  %s   (oracle %s)" % (fmt(summary["logloss"]), fmt(summary.get("oracle_logloss"))))
print("  trained on    %d examples, %s examples/s, %d bad lines skipped" %
      (examples, fmt(summary["examples_per_sec"], ".0f"), summary["bad_lines"]))
print("  elapsed       %.1f s with %s servers and %s workers" % (summary["elapsed_sec"], servers, workers))
print("  details       %s/summary.json and the *.log files there" % run)
PY
