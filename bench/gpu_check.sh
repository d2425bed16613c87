#!/usr/bin/env bash
# The whole GPU check in one call, for a machine with torch preinstalled and no internet:
#   bash bench/gpu_check.sh
# Ends within GPU_CHECK_SECONDS (default 570) of its start; each step has its own time limit, and
# the steps run most telling first, so that a limit cuts the least:
# 1. install without dependencies (or run from the checkout where that cannot build); 2. the CUDA
# tests; 3. the training-step benchmarks (kernels per step; batch 128 first): every model in the
# modes without torch.compile, then the compiled ones, which take longest to start, with and
# without --weight-copies; 4. the kernel benchmarks, then info_nll at other tilings than its
# wrapper picks, then infogan's step with TorchInductor options that may cut kernels; 5. a --amp
# --cuda-graphs training run of 2000 steps at batch 256, evaluated and timed from process start;
# 6. two MNIST epochs end to end; 7. the clipping RMSprop step against torch's, Adam's step with
# bf16 copies against autocast's casts and torch's step, and the gradient penalty's first-order
# form against a double backward; 8. in the time left, the same training run over seeds 0-4 at
# once (c1 accuracy per seed).
# Real data: the MNIST IDX files in .data/mnist (FASTINFO_DATA defaults to .data); a cached
# classifier in .data/cache/fastinfo is used when present. Logs go to $OUT as each step ends,
# with the benchmark JSON and the experiment results packed in $OUT/results.tar.gz.
set -uo pipefail
OUT=${OUT:-/tmp/fastinfo-gpu}
END=${GPU_CHECK_SECONDS:-570}
work=/tmp/fastinfo-gpu-work
mkdir -p "$OUT" "$work"
export PYTHONUNBUFFERED=1 FASTINFO_DATA=${FASTINFO_DATA:-$PWD/.data}
[ -d "$PWD/.data/cache" ] && export XDG_CACHE_HOME=$PWD/.data/cache
log=$OUT/check.log
pack() { tar czf "$OUT/results.tar.gz" -C "$work" --exclude='*.pt' --exclude='*.png' . 2>/dev/null; }

install_note=
if ! python3 -m pip install -q --no-deps --no-build-isolation -e . > "$work/install.log" 2>&1; then
    # no build tools here (setuptools >= 70.1, or wheel): run from the checkout, where a link
    # makes kernels/ the subpackage fastinfo.kernels, as setup.py's package_dir does
    ln -sfn ../kernels fastinfo/kernels
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
    install_note="install failed (install.log); running from the checkout"
fi
python3 -c "import fastinfo.kernels" >> "$work/install.log" 2>&1 \
    || { echo "fastinfo does not import"; cat "$work/install.log"; exit 1; }
{
    date -u
    [ -n "$install_note" ] && echo "$install_note"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
    python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} > "$log" 2>&1

step() {  # step NAME LIMIT_S COMMAND...: run for at most LIMIT_S (less if the check's end is nearer)
    local name=$1 limit=$2
    shift 2
    local left=$((END - SECONDS))
    ((left < limit)) && limit=$left
    if ((limit < 15)); then echo "== $name: not run, ${left} s left" >> "$log"; return; fi
    local start=$SECONDS
    timeout -k 5 "$limit" "$@" > "$work/$name.log" 2>&1
    local rc=$?
    { echo "== $name: exit $rc after $((SECONDS - start)) s (limit $limit s)"; tail -n 25 "$work/$name.log"; } >> "$log"
    pack
}
bench() {  # bench NAME LIMIT_S PYTEST_ARGS...: a benchmark step with its summary in $work/NAME.json
    local name=$1 limit=$2
    shift 2
    BENCH_SUMMARY=$work/$name.json step "$name" "$limit" python3 -m pytest --benchmark-only -q -p no:cacheprovider "$@"
}
train_run() {  # the settings that on the CPU reached the paper's ~95% c1 accuracy by step 2000
    echo --noise-prior uniform --batch-size 256 --amp --cuda-graphs --sample-every 0 "$@"
}

# deterministic cuBLAS: the graphed-vs-eager tests compare runs whose only difference is the graph
CUBLAS_WORKSPACE_CONFIG=:4096:8 step cuda_tests 180 python3 -m pytest tests -m cuda -v -rfE -p no:cacheprovider
bench bench_train 120 bench/test_train_step.py::test_train_step -k "not compile and not inductor"
# all three options for every model first, then infogan's other compiled modes
bench bench_compile 120 bench/test_train_step.py::test_train_step -k "amp_compile_graphs and not two_d and not copies"
bench bench_copies 120 bench/test_train_step.py::test_train_step -k "compile_graphs_weight_copies"
bench bench_compile_more 60 bench/test_train_step.py::test_train_step -k "compile and (two_d or not amp_compile_graphs)"
# InfoGAN on the 32x32 and 64x64 networks, eager and with all three options
bench bench_sizes 60 bench/test_train_step.py::test_train_step_per_image_size
# the 64x64 step with the data set in pinned host memory beside on the GPU
bench bench_data_on 40 bench/test_train_step.py::test_train_step_data_on
bench bench_kernels 150 bench --ignore=bench/test_train_step.py --ignore=bench/test_rmsprop.py \
    --ignore=bench/test_gradient_penalty.py --ignore=bench/test_adam.py -k "not tiling" \
    --benchmark-json="$work/bench_kernels_full.json"
bench bench_tiling 60 bench/test_info_nll.py -k tiling
bench bench_inductor 90 bench/test_train_step.py::test_train_step -k "inductor and 128-infogan"
# the stretch goal's measure: process start to evaluation, 2000 steps (paper preset, z uniform)
# (the wall time to the process's exit, and timings.json's parts of it)
step graphs_run 45 bash -c 'TIMEFORMAT="wall %R s"; time "$@"' _ python3 -m fastinfo.train --model infogan \
    --steps 2000 $(train_run) --no-progress --out "$work/run-graphs" --log-every 500
tail -n 1 "$work/run-graphs/metrics.jsonl" >> "$log" 2>/dev/null
cat "$work/run-graphs/timings.json" >> "$log" 2>/dev/null
bench bench_epoch 60 bench/test_train_step.py::test_mnist_epoch
bench bench_rmsprop 50 bench/test_rmsprop.py
bench bench_adam 40 bench/test_adam.py
bench bench_gp 50 bench/test_gradient_penalty.py
step seeds 120 python3 -m fastinfo.sweep --models infogan --seeds 0-4 --procs 5 --steps 2000 \
    --out "$work/seeds" -- $(train_run --log-every 500)
cat "$work/seeds/summary.md" >> "$log" 2>/dev/null
sed -n '/fastinfo bench on/,/^-----/p' "$work"/bench_{train,compile,copies,compile_more,sizes,kernels,tiling,inductor,rmsprop,adam,gp,epoch}.log > "$OUT/bench_table.txt"
cat "$log"
