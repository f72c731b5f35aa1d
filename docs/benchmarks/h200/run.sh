#!/usr/bin/env bash
# Issue 23's GPU run, in one call on the offline H200 host (../shared/gpu/README.md):
# the CUDA tests (the demo in fp32/fp16/bf16, SyncBN with one process), then
# benchmark_detector.py on s12 and s24 at 640 beside HF transformers' RT-DETR-R18vd.
# From the repository root there, with .device/ staged (fetch-wheels.sh; an mmcv wheel
# built for the host's torch in .device/prebuilt/ skips the 2-minute build) and the demo's
# data/shapes/ carried:  bash docs/benchmarks/h200/run.sh
# Everything lands in $OUT; each step stops by DEADLINE seconds after the start.
set -u
OUT=${OUT:-$PWD/work_dirs/h200}
DEADLINE=${DEADLINE:-540}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
T0=$SECONDS
stamp() { echo "=== [$((SECONDS - T0)) s] $*"; }
# step SECONDS CMD...: run CMD for at most SECONDS, and never past DEADLINE
step() {
  local limit=$1 left=$((DEADLINE - (SECONDS - T0))); shift
  if [ "$left" -lt 20 ]; then stamp "skipped (deadline): $*"; return 1; fi
  [ "$limit" -gt "$left" ] && limit=$left
  stamp "$* (at most $limit s)"
  timeout "$limit" "$@"; local rc=$?
  stamp "rc=$rc"
  return $rc
}

stamp 'host'
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
nproc
python3 -c 'import torch, platform; print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())'
python3 -m pip list 2>/dev/null | grep -iE '^(torch|triton|onnx|onnxruntime|transformers|tensorrt|torch-tensorrt|numpy) '
python3 -c 'import onnxruntime as o; print("onnxruntime providers:", o.get_available_providers())'
python3 -c 'import tensorrt' 2>&1 | tail -1
echo "libnvinfer: $(ldconfig -p | grep -c nvinfer) entries"

# 1. HF transformers' RT-DETR-R18vd (transformers goes with the set-up below).
HF="python3 tools/analysis_tools/hf_rtdetr_benchmark.py --device cuda --sizes 640"
step 90 $HF --dtype fp32 --batch-sizes 1 --repeats 30 --out "$OUT/hf_fp32.json"
step 90 $HF --dtype fp16 --batch-sizes 1 16 --repeats 30 --out "$OUT/hf_fp16.json"

# 2. The OpenMMLab stack into /tmp/site.
stamp 'set-up'
if [ ! -f /tmp/site/.ready ] && ls .device/prebuilt/mmcv-*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \
    .device/whl/*.whl .device/prebuilt/mmcv-*.whl \
    && (cd /tmp && PYTHONPATH=/tmp/site python3 -c 'import mmcv._ext') \
    && touch /tmp/site/.ready || { echo 'prebuilt mmcv unusable: building it'; rm -rf /tmp/site; }
fi
bash .device/setup-on-device.sh || exit 1
source /tmp/site/env.sh
stamp 'set-up done'

# 3. The CUDA tests, while the compiled graphs are made for the timed runs below
# (inductor's caches keep them; the timed runs then trace again but do not compile).
BENCH="python3 tools/analysis_tools/benchmark_detector.py --device cuda --sizes 640"
S12=configs/rtdetr_riformer_s12.py
S24=configs/rtdetr_riformer_s24.py
(
  step 300 $BENCH $S12 --backends pytorch-deploy --compile --dtype fp16 --batch-sizes 1 16 --warmup 1 --repeats 1
  step 200 $BENCH $S12 --backends pytorch-deploy --compile --dtype fp32 --batch-sizes 1 --warmup 1 --repeats 1
) > "$OUT/precompile.log" 2>&1 &
PRECOMPILE=$!
step 330 python3 -m pytest tests/test_e2e/test_cuda.py -n 2 -rA -p no:cacheprovider \
  --basetemp=/tmp/pt -o tmp_path_retention_count=1 > "$OUT/test_cuda.log" 2>&1
tail -40 "$OUT/test_cuda.log"
pkill -f tools/train.py  # a timed-out test's trainings would share the GPU below
mkdir -p "$OUT/train_logs"
for f in $(find /tmp/pt -name '*.log' -o -name 'scalars.json' -o -name 'norms.json'); do
  cp "$f" "$OUT/train_logs/$(echo "${f#/tmp/pt/}" | tr / _)"
done
wait $PRECOMPILE
tail -5 "$OUT/precompile.log"

# 4. Timed runs, most wanted first.
step 90 $BENCH $S12 $S24 --backends pytorch-train pytorch-deploy --dtype fp16 --batch-sizes 1 16 \
  --peer-json "$OUT/hf_fp16.json" --out "$OUT/eager_fp16.json"
step 90 $BENCH $S12 $S24 --backends pytorch-deploy --cuda-graphs --dtype fp16 --batch-sizes 1 16 \
  --peer-json "$OUT/hf_fp16.json" --out "$OUT/graphs_fp16.json"
step 120 $BENCH $S12 --backends pytorch-deploy --compile --cuda-graphs --dtype fp16 --batch-sizes 1 16 \
  --peer-json "$OUT/hf_fp16.json" --out "$OUT/compile_graphs_fp16.json"
step 90 $BENCH $S12 $S24 --backends pytorch-train pytorch-deploy --dtype fp32 --batch-sizes 1 \
  --peer-json "$OUT/hf_fp32.json" --out "$OUT/eager_fp32.json"
step 60 $BENCH $S12 $S24 --backends pytorch-deploy --cuda-graphs --dtype fp32 --batch-sizes 1 \
  --peer-json "$OUT/hf_fp32.json" --out "$OUT/graphs_fp32.json"
step 90 $BENCH $S12 --backends pytorch-deploy --compile --dtype fp16 --batch-sizes 1 16 \
  --peer-json "$OUT/hf_fp16.json" --out "$OUT/compile_fp16.json"
step 90 $BENCH $S12 --backends pytorch-deploy --compile --dtype fp32 --batch-sizes 1 \
  --peer-json "$OUT/hf_fp32.json" --out "$OUT/compile_fp32.json"
stamp 'end'
