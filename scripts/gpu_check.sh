#!/usr/bin/env bash
# GPU check of the CUDA backend, for a machine with an NVIDIA GPU:
#
#   scripts/gpu_check.sh OUT_DIR
#
# 1. builds with CUDA (Release) in $PS_GPU_BUILD_DIR (default build-gpu/),
#    or, when .gpu/bundle.tar.xz exists ($PS_GPU_BUNDLE; made here by
#    scripts/gpu_bundle.sh), runs the bundle's binaries instead: the GPU
#    machines lent to this project cannot build it (no gRPC, RocksDB...).
#    A bundle built from other sources than this tree's is refused;
# 2. runs the CUDA tests (device_test, cuda_backend_test, cuda_model_test);
#    a CUDA test that skipped (no GPU) counts as a failure here, and with no
#    usable GPU the script stops after the first test;
# 3. runs the GPU benchmarks (tests/bench/cuda_bench.cu): pooling fwd+bwd
#    GB/s against the card's theoretical bandwidth, MLP step TFLOP/s
#    against the same GEMMs issued straight to cuBLAS;
# 4. trains the default DNN (configs/generated_dnn.pbtxt, train rows set to
#    $PS_GPU_CHECK_ROWS, default its own 2000000) with scripts/run_local.sh
#    with training.backend CPU and CUDA, servers on the same host, at the
#    config's batch (512) and at 4096;
# 5. writes to OUT_DIR three files -- summary.json (also printed),
#    gpu_check.log (this script's output) and results.tgz (every log, the
#    gtest and Google Benchmark JSON, the run summaries; no data) -- so that
#    a tool bringing back few files gets it all. The work folder is
#    $PS_GPU_WORK (default: a new folder under /tmp).
# Exit status: 0 when every step passed. The whole check stops at
# $PS_GPU_CHECK_BUDGET seconds (default 470; each step also has its own
# timeout), so it ends inside a 10-minute command limit.
set -uo pipefail
[ $# -eq 1 ] || { sed -n '2,28p' "$0"; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"
WORK="${PS_GPU_WORK:-$(mktemp -d /tmp/gpu_check.XXXXXX)}"
mkdir -p "$WORK"
BUILD="${PS_GPU_BUILD_DIR:-$ROOT/build-gpu}"
JOBS="${JOBS:-$(nproc)}"
ROWS="${PS_GPU_CHECK_ROWS:-2000000}"
DEADLINE=$((SECONDS + ${PS_GPU_CHECK_BUDGET:-470}))
FAILED=()
exec > >(tee "$OUT/gpu_check.log") 2>&1
TEE_PID=$!
step() { echo "gpu_check: [$SECONDS s] $*"; }
# The smaller of a step's own timeout and the time left (at least 1 s).
limit() {
  local left=$((DEADLINE - SECONDS))
  [ "$left" -lt 1 ] && left=1
  [ "$1" -lt "$left" ] && echo "$1" || echo "$left"
}

# Packs what came out of the work folder into OUT (called on every exit).
finish() {
  tar -C "$WORK" --exclude='data' --exclude='ckpt' --exclude='tables' \
      --exclude='bundle' --exclude='build' -czf "$OUT/results.tgz" . \
      2>/dev/null || true
  # Let tee write the log's end before the command returns.
  exec >&- 2>&-
  wait "$TEE_PID" 2>/dev/null || true
}
trap finish EXIT

nvidia-smi >"$WORK/nvidia-smi.txt" 2>&1 || step "nvidia-smi failed (see nvidia-smi.txt)"
grep -E "Driver Version|Compute M|MiB" "$WORK/nvidia-smi.txt" | head -5

BUNDLE="${PS_GPU_BUNDLE:-$ROOT/.gpu/bundle.tar.xz}"
if [ -f "$BUNDLE" ]; then
  # Binaries built elsewhere (scripts/gpu_bundle.sh): run each through the
  # bundle's own loader and libraries, with this machine's CUDA libraries.
  tar -C "$WORK" -xJf "$BUNDLE"
  B="$WORK/bundle"
  step "using the bundle $BUNDLE: $(cat "$B/VERSION" 2>/dev/null)"
  # The bundle holds the checksums of the sources it was built from.
  if [ ! -f "$B/SOURCES.sha256" ]; then
    echo "gpu_check: the bundle records no sources (made by an older" \
         "gpu_bundle.sh): rebuild it with scripts/gpu_bundle.sh" >&2
    exit 1
  fi
  if ! (cd "$ROOT" && sha256sum --quiet -c "$B/SOURCES.sha256" >"$WORK/stale.txt" 2>&1); then
    head -5 "$WORK/stale.txt"
    echo "gpu_check: the bundle was built from other sources than this tree:" \
         "rebuild it with scripts/gpu_bundle.sh" >&2
    exit 1
  fi
  # The CUDA runtime, cuBLAS and the driver of this machine: the toolkit's
  # folders first, the driver's, LD_LIBRARY_PATH (the loader is run with
  # --library-path, which replaces it), then wherever else they are.
  cuda_dirs=()
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
           /usr/local/cuda-13*/lib64 /usr/local/cuda-13*/targets/x86_64-linux/lib \
           /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$d" ] && cuda_dirs+=("$d")
  done
  found="$(timeout 20 find /usr /opt /lib /lib64 \( -name 'libcublas.so.13*' \
             -o -name 'libcudart.so.13*' -o -name 'libcuda.so.1' \) 2>/dev/null |
           xargs -r -n1 dirname | awk '!seen[$0]++' | paste -sd: -)"
  CUDA_LIBS="$(IFS=:; echo "${cuda_dirs[*]:-}"):${LD_LIBRARY_PATH:-}:$found"
  ldconfig -p 2>/dev/null | grep -E "libcuda\.so\.1|libcublas\.so\.13|libcudart\.so\.13" |
    head -3
  step "CUDA libraries searched in: $CUDA_LIBS"
  # Run through the loader, ps_worker cannot start itself again with faster
  # OpenBLAS kernels (kernels/cpu/blas_core.h): name them here, as it would.
  if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    flags="$(grep -m1 '^flags' /proc/cpuinfo)"
    has() { for f in "$@"; do case " $flags " in *" $f "*) ;; *) return 1 ;; esac; done; }
    if has avx512f avx512cd avx512bw avx512dq avx512vl; then
      export OPENBLAS_CORETYPE=SkylakeX
    elif has avx2 fma; then
      export OPENBLAS_CORETYPE=Haswell
    fi
    step "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset, OpenBLAS chooses}"
  fi
  BUILD="$WORK/build"
  for p in tests/device_test tests/cuda_backend_test tests/cuda_model_test \
           tests/cuda_bench server/ps_server worker/ps_worker tools/ps_datagen; do
    mkdir -p "$BUILD/$(dirname "$p")"
    printf '#!/bin/sh\nexec "%s/lib/ld-linux-x86-64.so.2" --library-path "%s/lib:%s" "%s/bin/%s" "$@"\n' \
      "$B" "$B" "$CUDA_LIBS" "$B" "$(basename "$p")" >"$BUILD/$p"
    chmod +x "$BUILD/$p"
  done
else
  step "building in $BUILD (log: build.log)"
  if ! { timeout "$(limit 300)" cmake -S "$ROOT" -B "$BUILD" \
           -DCMAKE_BUILD_TYPE=Release -DPS_ENABLE_CUDA=ON &&
         timeout "$(limit 300)" cmake --build "$BUILD" -j"$JOBS" --target \
           device_test cuda_backend_test cuda_model_test cuda_bench ps_server \
           ps_worker ps_datagen; } >"$WORK/build.log" 2>&1; then
    tail -20 "$WORK/build.log"
    echo "gpu_check: build failed (a machine without this project's libraries" \
         "needs a bundle: scripts/gpu_bundle.sh)" >&2
    exit 1
  fi
  grep -q "PS CUDA backend: ON" "$WORK/build.log" ||
    { echo "gpu_check: configure found no nvcc (PS CUDA backend is OFF)" >&2; exit 1; }
fi

no_gpu=0
for t in device_test:20 cuda_backend_test:60 cuda_model_test:90; do
  name="${t%%:*}"
  step "running $name"
  if ! timeout "$(limit "${t##*:}")" "$BUILD/tests/$name" \
      --gtest_output="json:$WORK/$name.json" >"$WORK/$name.log" 2>&1; then
    FAILED+=("$name")
    grep -E "Failure|FAILED|error" -A3 "$WORK/$name.log" | head -30
  elif grep -q "\[  SKIPPED \]" "$WORK/$name.log"; then
    FAILED+=("$name (skipped: $(grep -m1 -A1 'Skipped' "$WORK/$name.log" | tail -1))")
    if grep -q "no usable GPU\|built without CUDA" "$WORK/$name.log"; then
      no_gpu=1
      grep -m1 "no usable GPU\|built without CUDA" "$WORK/$name.log"
      break
    fi
  fi
  grep -E "^\[  (PASSED|FAILED) +\]" "$WORK/$name.log" | head -3
done

if [ "$no_gpu" = 0 ]; then
  step "running cuda_bench"
  if ! timeout "$(limit 90)" "$BUILD/tests/cuda_bench" --benchmark_min_time=0.2 \
      --benchmark_out="$WORK/cuda_bench.json" --benchmark_out_format=json \
      >"$WORK/cuda_bench.log" 2>&1; then
    FAILED+=("cuda_bench")
    tail -20 "$WORK/cuda_bench.log"
  fi

  # The default DNN with each backend, at its batch and at a GPU-sized one;
  # later runs reuse the first run's data.
  for run_name in cpu cuda cpu_b4096 cuda_b4096; do
    lower="${run_name%%_*}"
    backend=$(echo "$lower" | tr a-z A-Z)
    batch=512
    [ "$run_name" != "$lower" ] && batch="${run_name#*_b}"
    run="$WORK/run_$run_name"
    mkdir -p "$run"
    config="$WORK/generated_dnn_$run_name.pbtxt"
    sed -e "s/^\([[:space:]]*train_rows:\).*/\1 $ROWS/" \
        -e "s/^\([[:space:]]*batch_size:\).*/\1 $batch/" \
        -e "s/^training {/training {\n  backend: $backend/" \
        "$ROOT/configs/generated_dnn.pbtxt" >"$config"
    if [ "$run_name" != cpu ] && [ -d "$WORK/run_cpu/data" ]; then
      ln -sfn "$WORK/run_cpu/data" "$run/data"
    fi
    step "training the default DNN with backend $backend, batch $batch ($ROWS rows)"
    if PS_SKIP_BUILD=1 PS_BUILD_DIR="$BUILD" timeout "$(limit 90)" \
        "$ROOT/scripts/run_local.sh" --config "$config" --run-dir "$run" \
        >"$run/run_local.log" 2>&1; then
      cp "$run/summary.json" "$WORK/worker_$run_name.json"
    else
      FAILED+=("run_local $run_name")
      tail -10 "$run/run_local.log"
    fi
  done
  grep -h "model runs on" "$WORK"/run_*/worker_0.log 2>/dev/null |
    sed 's/^[^]]*] /gpu_check: /'
fi

python3 - "$WORK" "$OUT" "${FAILED[@]+"${FAILED[@]}"}" <<'PY'
import json, os, sys
work, out, failed = sys.argv[1], sys.argv[2], sys.argv[3:]
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
    j = load(os.path.join(work, t + ".json"))
    if j is not None:
        summary["tests"][t] = {k: j.get(k) for k in ("tests", "failures", "disabled", "errors")}
j = load(os.path.join(work, "cuda_bench.json"))
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
for b in ("cpu", "cuda", "cpu_b4096", "cuda_b4096"):
    j = load(os.path.join(work, "worker_%s.json" % b))
    if j is not None:
        summary["worker"][b] = {k: j.get(k) for k in ("examples_per_sec", "auc", "logloss", "elapsed_sec")}
for d in (work, out):
    json.dump(summary, open(os.path.join(d, "summary.json"), "w"), indent=2)
print(json.dumps(summary, indent=2))
PY
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "gpu_check: FAILED: ${FAILED[*]}" >&2
  exit 1
fi
step "all passed; results in $OUT"
