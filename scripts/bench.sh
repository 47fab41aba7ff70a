#!/usr/bin/env bash
# Builds and runs the benchmarks (tests/bench/) and prints a JSON summary.
#
#   scripts/bench.sh [--quick] [OUT_DIR]
#
# OUT_DIR (default runs/bench-<date>) receives sparse_table_bench.json,
# rpc_bench.json and reader_bench.json (Google Benchmark JSON) and
# summary.json (the medians of $PS_BENCH_REPS repetitions, default 3, run in
# random interleaved order).
# --quick runs each benchmark once, briefly: a smoke run, not figures to
# quote. --checkpoint also runs table_checkpoint_bench (checkpoint and
# restore of a 10 M-row table, memory and tiered; a few minutes) into
# OUT_DIR/table_checkpoint.json. The build directory is $PS_BUILD_DIR (default build/); only the
# benchmark targets are built, with $PS_JOBS jobs (default: nproc).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${PS_BUILD_DIR:-$ROOT/build}"
JOBS="${PS_JOBS:-$(nproc)}"

REPS="${PS_BENCH_REPS:-3}"
MIN_TIME=""
OUT=""
CHECKPOINT=0
for arg in "$@"; do
  case "$arg" in
    --quick) MIN_TIME="--benchmark_min_time=0.05"; REPS=1 ;;
    --checkpoint) CHECKPOINT=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "bench: unknown option $arg" >&2; exit 2 ;;
    *) OUT="$arg" ;;
  esac
done
OUT="${OUT:-$ROOT/runs/bench-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"

mkdir -p "$BUILD"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  if ! cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      >"$BUILD/configure.log" 2>&1; then
    cat "$BUILD/configure.log"
    exit 1
  fi
fi
echo "bench: building in $BUILD with $JOBS jobs" >&2
if ! cmake --build "$BUILD" -j "$JOBS" --target sparse_table_bench rpc_bench \
    reader_bench table_checkpoint_bench \
    >"$BUILD/bench-build.log" 2>&1; then
  grep -E "error|Error" -A5 "$BUILD/bench-build.log" | head -80 >&2 || true
  echo "bench: build FAILED (full log: $BUILD/bench-build.log)" >&2
  exit 1
fi

for bench in sparse_table_bench rpc_bench reader_bench; do
  echo "bench: running $bench" >&2
  # Console output to stderr so stdout is the summary alone.
  # Repetitions run interleaved in random order, so a burst of load from
  # other processes spreads over all benchmarks instead of skewing one ratio.
  GLOG_minloglevel=1 "$BUILD/tests/$bench" $MIN_TIME \
    --benchmark_repetitions="$REPS" --benchmark_enable_random_interleaving=true \
    --benchmark_display_aggregates_only=true \
    --benchmark_out="$OUT/$bench.json" --benchmark_out_format=json >&2
done

if [ "$CHECKPOINT" = 1 ]; then
  echo "bench: running table_checkpoint_bench (10 M rows)" >&2
  GLOG_minloglevel=1 "$BUILD/tests/table_checkpoint_bench" \
    --dir "$OUT/table_checkpoint_tmp" | tee "$OUT/table_checkpoint.json" >&2
fi

python3 - "$OUT" <<'EOF' | tee "$OUT/summary.json"
import json, re, sys

out = sys.argv[1]

def load(name):
    with open(f"{out}/{name}.json") as f:
        data = json.load(f)
    # The median of the repetitions where there are several, else the run.
    runs, medians = {}, {}
    for b in data["benchmarks"]:
        if "error_occurred" in b:
            continue
        name = b.get("run_name", b["name"]).split("/real_time")[0]
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = b
        else:
            runs[name] = b
    runs.update(medians)
    return data.get("context", {}), runs

def args(name):
    return dict((k, int(v)) for k, v in re.findall(r"(\w+):(\d+)", name))

def dist(zipf):
    return "zipf1.1" if zipf else "uniform"

OPS = {"pull": 0, "push_adagrad": 1}

def order(e):
    return (OPS[e["op"]], e["dim"], e.get("batch_keys", 0), e["keys"])

ctx, local = load("sparse_table_bench")
_, rpc = load("rpc_bench")
MiB = 1 << 20

raw, raw_inline, raw_adagrad = {}, {}, {}
for name, b in local.items():
    base = name.split("/")[0]
    if base == "BM_RawFlatHashMapAdagrad":
        a = args(name)
        raw_adagrad[(a["dim"], dist(a["zipf"]))] = b["items_per_second"]
    elif base == "BM_RawFlatHashMap":
        raw[dist(args(name)["zipf"])] = b["items_per_second"]
    elif base == "BM_RawFlatHashMapInlineCopy":
        raw_inline[dist(args(name)["zipf"])] = b["items_per_second"]

in_process = []
for name, b in local.items():
    op = {"BM_SparsePull": "pull", "BM_SparsePushAdagrad": "push_adagrad"}.get(
        name.split("/")[0])
    if op is None:
        continue
    a = args(name)
    d = dist(a["zipf"])
    rows = b["items_per_second"]
    in_process.append({
        "op": op, "dim": a["dim"], "keys": d,
        "rows_per_s": round(rows),
        "ratio_to_raw": round(rows / raw[d], 3) if d in raw else None,
        "ratio_to_raw_inline": (round(rows / raw_inline[d], 3)
                                if d in raw_inline else None),
    })
    if op == "push_adagrad" and (a["dim"], d) in raw_adagrad:
        # The like-for-like yardstick: a raw map doing the same update.
        in_process[-1]["ratio_to_raw_adagrad"] = round(
            rows / raw_adagrad[(a["dim"], d)], 3)

# Storage tiers: memory, tiered with the table in its budget, tiered 10x
# over its budget; each against memory storage and the raw baseline.
STORAGE = {0: "memory", 1: "tiered_in_budget", 2: "tiered_10x_over_budget",
           3: "tiered_plain_10x_over_budget"}
storage_rows = {}
for name, b in local.items():
    op = {"BM_StoragePull": "pull", "BM_StoragePushAdagrad": "push_adagrad"}.get(
        name.split("/")[0])
    if op is None:
        continue
    a = args(name)
    storage_rows[(op, a["dim"], dist(a["zipf"]), a["storage"])] = b
# The floor of a miss: a MultiGet from a compacted store (BM_KvMultiGet),
# BLOCK_BASED for storage 2, PLAIN for storage 3.
kv_floor_ns = {}
for name, b in local.items():
    if name.split("/")[0] == "BM_KvMultiGet":
        kv_floor_ns[args(name)["format"]] = b["ns_per_key"] * 1e9
storage = []
for (op, dim, d, st), b in storage_rows.items():
    rows = b["items_per_second"]
    mem = storage_rows.get((op, dim, d, 0))
    e = {"op": op, "dim": dim, "keys": d, "storage": STORAGE[st],
         "rows_per_s": round(rows),
         "ratio_to_memory": round(rows / mem["items_per_second"], 3) if mem else None,
         "ratio_to_raw": round(rows / raw[d], 3) if d in raw else None}
    if "hit_rate" in b:
        e["hit_rate"] = round(b["hit_rate"], 3)
        if "static_best_hit_rate" in b:
            # That of the most frequent keys that fit, chosen with hindsight.
            e["static_best_hit_rate"] = round(b["static_best_hit_rate"], 3)
        floor = kv_floor_ns.get({2: 0, 3: 1}.get(st))
        if floor and mem:
            # The best ratio to memory this hit rate allows: hits at memory
            # speed, each miss costing only the floor read (of a 128-byte
            # row; rows of dim 64 are larger, so their bound is optimistic).
            mem_ns = 1e9 / mem["items_per_second"]
            h = b["hit_rate"]
            e["bound_by_miss_floor"] = round(
                mem_ns / (h * mem_ns + (1 - h) * floor), 3)
    if "overhead_B_per_row" in b:
        e["overhead_B_per_row"] = round(b["overhead_B_per_row"], 1)
    storage.append(e)
storage.sort(key=lambda e: (OPS[e["op"]], e["dim"], e["keys"], e["storage"]))

grpc_raw = rpc.get("BM_GrpcRawBytes")
raw_mib = grpc_raw["bytes_per_second"] / MiB if grpc_raw else None
grpc = []
for name, b in rpc.items():
    op = {"BM_GrpcPullSparse": "pull", "BM_GrpcPushSparse": "push_adagrad"}.get(
        name.split("/")[0])
    if op is None:
        continue
    a = args(name)
    mib = b["bytes_per_second"] / MiB
    grpc.append({
        "op": op, "dim": a["dim"], "batch_keys": a["keys"],
        "keys": dist(a["zipf"]),
        "rows_per_s": round(b["items_per_second"]),
        "value_MiB_per_s": round(mib, 1),
        "ratio_to_raw_4MiB": round(mib / raw_mib, 3) if raw_mib else None,
    })

_, reader = load("reader_bench")
READER = {"BM_ReadCriteo": "plain", "BM_ReadCriteoGzip": "gzip_4_files",
          "BM_ReadCriteoOneGzip": "gzip_1_file"}
reader_rates = {}
for name, b in reader.items():
    base, threads = name.split("/")[:2]
    if base in READER:
        reader_rates.setdefault(READER[base], {})[threads] = round(b["examples/s"])
reader_rates = {k: dict(sorted(v.items(), key=lambda kv: int(kv[0])))
                for k, v in sorted(reader_rates.items())}

in_process.sort(key=order)
grpc.sort(key=order)
summary = {
    "out_dir": out,
    "host": {k: ctx.get(k) for k in ("num_cpus", "mhz_per_cpu", "load_avg")},
    "raw_flat_hash_map_rows_per_s": {k: round(v) for k, v in sorted(raw.items())},
    "raw_inline_copy_rows_per_s": {k: round(v) for k, v in sorted(raw_inline.items())},
    "in_process": in_process,
    "storage": storage,
    "kv_multiget_floor_ns_per_key": {
        ("plain" if f else "block_based"): round(v) for f, v in
        sorted(kv_floor_ns.items())},
    "grpc_raw_4MiB_MiB_per_s": round(raw_mib, 1) if raw_mib else None,
    "grpc": grpc,
    "reader_criteo_examples_per_s_by_threads": reader_rates,
}
# One line per measurement, so the summary reads as a table.
lines = []
for i, (k, v) in enumerate(summary.items()):
    comma = "," if i + 1 < len(summary) else ""
    if isinstance(v, list):
        items = ",\n".join("  " + json.dumps(e) for e in v)
        lines.append(f" {json.dumps(k)}: [\n{items}\n ]{comma}")
    else:
        lines.append(f" {json.dumps(k)}: {json.dumps(v)}{comma}")
print("{\n" + "\n".join(lines) + "\n}")
EOF
