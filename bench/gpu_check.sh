#!/usr/bin/env bash
# The GPU check in one call, for a machine with torch preinstalled and no internet:
#   bash bench/gpu_check.sh check        # CUDA tests, a --amp --compile training smoke, benchmarks (~5 min)
#   bash bench/gpu_check.sh experiments  # multi-seed sweeps and the MINE Gaussian table (~5 min)
# Real data: put the MNIST IDX files in .data/mnist (FASTINFO_DATA defaults to .data).
# Logs, benchmark JSON and results go to $OUT (default /tmp/fastinfo-gpu), packed in one tarball.
set -uo pipefail
stage=${1:-check}
OUT=${OUT:-/tmp/fastinfo-gpu}
work=/tmp/fastinfo-gpu-work
mkdir -p "$OUT" "$work"
export PYTHONUNBUFFERED=1 FASTINFO_DATA=${FASTINFO_DATA:-$PWD/.data}
[ -d "$PWD/.data/cache" ] && export XDG_CACHE_HOME=$PWD/.data/cache
log=$OUT/$stage.log
python3 -m pip install -q --no-deps --no-build-isolation -e . > "$work/install.log" 2>&1 \
    || { echo "install failed"; cat "$work/install.log"; exit 1; }
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
    python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} > "$log" 2>&1

if [ "$stage" = check ]; then
    timeout 150 python3 -m pytest tests -m cuda -q -p no:cacheprovider >> "$log" 2>&1
    echo "cuda tests exit $?" >> "$log"
    timeout 120 python3 -m fastinfo.train --model infogan --steps 300 --amp --compile --no-progress \
        --out "$work/smoke-compile" --log-every 100 --sample-every 0 >> "$log" 2>&1
    echo "train --amp --compile exit $?" >> "$log"
    BENCH_SUMMARY=$work/bench_summary.json timeout 330 python3 -m pytest bench --benchmark-only -q \
        -p no:cacheprovider --benchmark-json="$work/bench.json" > "$work/bench.log" 2>&1
    echo "bench exit $?" >> "$log"
    sed -n '/fastinfo bench on/,/^-----/p' "$work/bench.log" >> "$log"
    tail -5 "$work/bench.log" >> "$log"
elif [ "$stage" = experiments ]; then
    timeout 200 python3 -m fastinfo.sweep --models gan,infogan,infowgan --seeds 0-2 --steps 2000 \
        --out "$work/sweep" -- --batch-size 64 --sample-every 0 >> "$log" 2>&1
    echo "sweep exit $?" >> "$log"
    timeout 150 python3 -m fastinfo.mine_check --dims 1,5,20 --steps 2000 --batch-size 256 \
        --out "$work/mine_check" >> "$log" 2>&1
    echo "mine_check exit $?" >> "$log"
fi
tar czf "$OUT/$stage.tar.gz" -C "$work" --exclude='*.pt' . 2>/dev/null
cat "$log"
