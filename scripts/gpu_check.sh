#!/usr/bin/env bash
# GPU check of the CUDA backend, for a machine with an NVIDIA GPU:
#
#   scripts/gpu_check.sh OUT_DIR
#
# 1. builds with CUDA (Release) in $PS_GPU_BUILD_DIR (default build-gpu/),
#    or, when .gpu/bundle.tar.xz exists ($PS_GPU_BUNDLE; made here by
#    scripts/gpu_bundle.sh), runs the bundle's binaries instead: the GPU
#    machines lent to this project cannot build it (no gRPC, RocksDB...);
# 2. runs the CUDA tests (device_test, cuda_backend_test, cuda_model_test):
#    gtest JSON in OUT_DIR/<test>.json; a CUDA test that skipped (no GPU)
#    counts as a failure here;
# 3. runs the GPU benchmarks (tests/bench/cuda_bench.cu): Google Benchmark
#    JSON in OUT_DIR/cuda_bench.json -- pooling fwd+bwd GB/s against the
#    card's theoretical bandwidth, MLP step TFLOP/s against the same GEMMs
#    issued straight to cuBLAS;
# 4. trains the default DNN (configs/generated_dnn.pbtxt, train rows cut to
#    $PS_GPU_CHECK_ROWS, default 500000) with scripts/run_local.sh, once
#    with training.backend CPU and once CUDA, servers on the same host:
#    OUT_DIR/worker_{cpu,cuda}.json (run summaries), logs in OUT_DIR/run_*;
# 5. writes OUT_DIR/summary.json and prints it.
# Exit status: 0 when every step passed. Budget: under 8 minutes on an H100
# host with 16 cores (each step has its own timeout).
set -uo pipefail
[ $# -eq 1 ] || { sed -n '2,23p' "$0"; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"
BUILD="${PS_GPU_BUILD_DIR:-$ROOT/build-gpu}"
JOBS="${JOBS:-$(nproc)}"
ROWS="${PS_GPU_CHECK_ROWS:-500000}"
FAILED=()
step() { echo "gpu_check: $*"; }

nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || step "nvidia-smi failed (see $OUT/nvidia-smi.txt)"

BUNDLE="${PS_GPU_BUNDLE:-$ROOT/.gpu/bundle.tar.xz}"
if [ -f "$BUNDLE" ]; then
  # Binaries built elsewhere (scripts/gpu_bundle.sh): run each through the
  # bundle's own loader and libraries, with this machine's CUDA libraries.
  UNPACK="$(mktemp -d)"
  tar -C "$UNPACK" -xJf "$BUNDLE"
  B="$UNPACK/bundle"
  CUDA_LIBS="$(find / -xdev \( -name 'libcublas.so.13*' -o -name 'libcudart.so.13*' \
                 -o -name 'libcuda.so.1' \) 2>/dev/null | xargs -r -n1 dirname |
               sort -u | paste -sd: -)"
  step "using the bundle $BUNDLE (CUDA libraries from ${CUDA_LIBS:-nowhere})"
  BUILD="$UNPACK/build"
  for p in tests/device_test tests/cuda_backend_test tests/cuda_model_test \
           tests/cuda_bench server/ps_server worker/ps_worker worker/ps_datagen; do
    mkdir -p "$BUILD/$(dirname "$p")"
    printf '#!/bin/sh\nexec "%s/lib/ld-linux-x86-64.so.2" --library-path "%s/lib:%s" "%s/bin/%s" "$@"\n' \
      "$B" "$B" "$CUDA_LIBS" "$B" "$(basename "$p")" >"$BUILD/$p"
    chmod +x "$BUILD/$p"
  done
else
  step "building in $BUILD (log: $OUT/build.log)"
  if ! { timeout 300 cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
           -DPS_ENABLE_CUDA=ON &&
         timeout 300 cmake --build "$BUILD" -j"$JOBS" --target device_test \
           cuda_backend_test cuda_model_test cuda_bench ps_server ps_worker \
           ps_datagen; } >"$OUT/build.log" 2>&1; then
    tail -20 "$OUT/build.log"
    echo "gpu_check: build failed (a machine without this project's libraries" \
         "needs a bundle: scripts/gpu_bundle.sh)" >&2
    exit 1
  fi
  grep -q "PS CUDA backend: ON" "$OUT/build.log" ||
    { echo "gpu_check: configure found no nvcc (PS CUDA backend is OFF)" >&2; exit 1; }
fi

for t in device_test cuda_backend_test cuda_model_test; do
  step "running $t"
  if ! timeout 120 "$BUILD/tests/$t" --gtest_output="json:$OUT/$t.json" \
      >"$OUT/$t.log" 2>&1; then
    FAILED+=("$t")
    tail -20 "$OUT/$t.log"
  elif grep -q "\[  SKIPPED \]" "$OUT/$t.log"; then
    FAILED+=("$t (skipped: $(grep -m1 -A1 'Skipped' "$OUT/$t.log" | tail -1))")
  fi
done

step "running cuda_bench"
if ! timeout 180 "$BUILD/tests/cuda_bench" --benchmark_min_time=0.2 \
    --benchmark_out="$OUT/cuda_bench.json" --benchmark_out_format=json \
    >"$OUT/cuda_bench.log" 2>&1; then
  FAILED+=("cuda_bench")
  tail -20 "$OUT/cuda_bench.log"
fi

# The default DNN with each backend; the CUDA run reuses the CPU run's data.
for backend in CPU CUDA; do
  lower=$(echo "$backend" | tr A-Z a-z)
  run="$OUT/run_$lower"
  mkdir -p "$run"
  config="$OUT/generated_dnn_$lower.pbtxt"
  sed -e "s/^\([[:space:]]*train_rows:\).*/\1 $ROWS/" \
      -e "s/^training {/training {\n  backend: $backend/" \
      "$ROOT/configs/generated_dnn.pbtxt" >"$config"
  if [ "$backend" = CUDA ] && [ -d "$OUT/run_cpu/data" ]; then
    ln -sfn "$OUT/run_cpu/data" "$run/data"
  fi
  step "training the default DNN with backend $backend ($ROWS rows)"
  if PS_SKIP_BUILD=1 PS_BUILD_DIR="$BUILD" timeout 150 \
      "$ROOT/scripts/run_local.sh" --config "$config" --run-dir "$run" \
      >"$run/run_local.log" 2>&1; then
    cp "$run/summary.json" "$OUT/worker_$lower.json"
  else
    FAILED+=("run_local $backend")
    tail -10 "$run/run_local.log"
  fi
done
grep -h "model runs on" "$OUT"/run_*/worker_0.log 2>/dev/null |
  sed 's/^[^]]*] /gpu_check: /'

python3 - "$OUT" "${FAILED[@]+"${FAILED[@]}"}" <<'PY'
import json, os, sys
out, failed = sys.argv[1], sys.argv[2:]
summary = {"failed": failed, "tests": {}, "bench": {}, "worker": {},
           "unreadable": []}

def load(path):
    """The JSON in path, or None (noted) when a failed step left it cut."""
    if not os.path.exists(path):
        return None
    try:
        return json.load(open(path))
    except ValueError:
        summary["unreadable"].append(os.path.basename(path))
        return None
for t in ("device_test", "cuda_backend_test", "cuda_model_test"):
    j = load(os.path.join(out, t + ".json"))
    if j is not None:
        summary["tests"][t] = {k: j.get(k) for k in ("tests", "failures", "disabled", "errors")}
j = load(os.path.join(out, "cuda_bench.json"))
if j is not None:
    summary["gpu"] = j.get("context", {}).get("host_name")
    rates = {}
    for b in j.get("benchmarks", []):
        name = b["name"]
        entry = {"time_us": b.get("real_time")}
        for k in ("GB/s", "peak_GB/s", "TFLOP/s"):
            if k in b:
                entry[k] = b[k]
        if "GB/s" in b and b.get("peak_GB/s"):
            entry["fraction_of_peak"] = b["GB/s"] / b["peak_GB/s"]
        rates[name] = entry
    for name, e in rates.items():
        if name.startswith("BM_MlpStep/"):
            ref = rates.get(name.replace("BM_MlpStep/", "BM_CublasGemms/"))
            if ref and ref.get("TFLOP/s"):
                e["fraction_of_cublas"] = e["TFLOP/s"] / ref["TFLOP/s"]
    summary["bench"] = rates
for b in ("cpu", "cuda"):
    j = load(os.path.join(out, "worker_%s.json" % b))
    if j is not None:
        summary["worker"][b] = {k: j.get(k) for k in ("examples_per_sec", "auc", "logloss", "elapsed_sec")}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
print(json.dumps(summary, indent=2))
PY
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "gpu_check: FAILED: ${FAILED[*]}" >&2
  exit 1
fi
echo "gpu_check: all passed; results in $OUT"
