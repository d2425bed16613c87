#!/usr/bin/env bash
# The whole GPU check in one call, for a machine with torch preinstalled and no internet
# (about 8 minutes on an H200; each step has its own time limit):
#   bash bench/gpu_check.sh
# 1. install without dependencies; 2. the CUDA tests; 3. a --amp --compile training smoke run;
# 4. the benchmarks; 5. a multi-seed sweep (gan, infogan, infowgan) and MINE's d = 20 Gaussian rows.
# Real data: the MNIST IDX files in .data/mnist (FASTINFO_DATA defaults to .data); a cached
# classifier in .data/cache/fastinfo is used when present. Logs go to $OUT as each step ends,
# with the benchmark JSON and the experiment results packed in $OUT/results.tar.gz.
set -uo pipefail
OUT=${OUT:-/tmp/fastinfo-gpu}
work=/tmp/fastinfo-gpu-work
mkdir -p "$OUT" "$work"
export PYTHONUNBUFFERED=1 FASTINFO_DATA=${FASTINFO_DATA:-$PWD/.data}
[ -d "$PWD/.data/cache" ] && export XDG_CACHE_HOME=$PWD/.data/cache
log=$OUT/check.log
pack() { tar czf "$OUT/results.tar.gz" -C "$work" --exclude='*.pt' --exclude='*.png' . 2>/dev/null; }

python3 -m pip install -q --no-deps --no-build-isolation -e . > "$work/install.log" 2>&1 \
    || { echo "install failed"; cat "$work/install.log"; exit 1; }
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
    python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} > "$log" 2>&1

step() {  # step NAME TIMEOUT_S COMMAND...: run, log its tail and exit code
    local name=$1 limit=$2
    shift 2
    timeout "$limit" "$@" > "$work/$name.log" 2>&1
    local rc=$?
    { echo "== $name: exit $rc"; tail -n 25 "$work/$name.log"; } >> "$log"
    pack
}

step cuda_tests 90 python3 -m pytest tests -m cuda -q -p no:cacheprovider
step compile_smoke 90 python3 -m fastinfo.train --model infogan --steps 100 --amp --compile --no-progress \
    --out "$work/smoke-compile" --log-every 100 --sample-every 0 --no-eval-at-end
BENCH_SUMMARY=$work/bench_kernels.json step bench_kernels 150 python3 -m pytest bench --benchmark-only -q \
    -p no:cacheprovider --benchmark-json="$work/bench_kernels_full.json" --ignore=bench/test_train_step.py
BENCH_SUMMARY=$work/bench_train.json step bench_train 150 python3 -m pytest bench/test_train_step.py \
    --benchmark-only -q -p no:cacheprovider
sed -n '/fastinfo bench on/,/^-----/p' "$work/bench_kernels.log" "$work/bench_train.log" > "$OUT/bench_table.txt"
step sweep 110 python3 -m fastinfo.sweep --models gan,infogan,infowgan --seeds 0-1 --steps 1000 \
    --out "$work/sweep" --samples-per-value 100 -- --batch-size 64 --sample-every 0
step mine_check 50 python3 -m fastinfo.mine_check --dims 20 --steps 1500 --batch-size 256 --out "$work/mine_check"
cat "$log"
