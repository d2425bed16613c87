"""Training throughput: images/s and µs/step per model and mode at batch 64, 128 and 256, kernels
per step and peak memory; InfoGAN's on the 32x32 and 64x64 networks; and one MNIST epoch end to
end.

Modes: the model's reference loop (bench/reference_loop.py), fastinfo eager, --amp (bf16),
--amp --compile, --amp --cuda-graphs and all three; in fp32, --cuda-graphs with and without
--compile; all three on bf16 weight copies (--weight-copies); with two D forwards
(--no-joint-d) against the default one; and all three options with TorchInductor options
(--inductor) that may cut kernels a step. fastinfo's fp32 modes
run their matrix products on TF32 tensor cores (the default --tf32); the reference loop keeps
PyTorch's default, full fp32 products.
The ratio to the reference loop is taken between cases of one run of bench/gpu_check.sh."""

import contextlib
import gc
import time

import pytest
import torch

from bench.measure import DEVICE, ON_GPU, add_result, aten_ops_per_call, gpu_ops_and_busy_time
from bench.reference_loop import REFERENCES
from fastinfo import data, runner
from fastinfo.config import make_config
from fastinfo.runs import build_model
from fastinfo.train import matmul_precision

MODES = {  # the order they run in, the most telling first: a time limit cuts the end
    "reference": {}, "eager": {}, "amp": {"amp": "bf16"},
    "amp_graphs": {"amp": "bf16", "cuda_graphs": True},
    "amp_graphs_weight_copies": {"amp": "bf16", "cuda_graphs": True, "weight_copies": True},
    "amp_compile_graphs": {"amp": "bf16", "compile": True, "cuda_graphs": True},
    # the same on bf16 copies of the weights, which the optimisers write: no weight casts
    "amp_compile_graphs_weight_copies": {"amp": "bf16", "compile": True, "cuda_graphs": True, "weight_copies": True},
    # fp32 weights and activations with TF32 products: no cast kernels, twice the bytes
    "graphs": {"cuda_graphs": True},
    "compile_graphs": {"compile": True, "cuda_graphs": True},
    "amp_compile": {"amp": "bf16", "compile": True},
    # two D forwards, real and fake (--no-joint-d), against the default single one
    "amp_graphs_two_d": {"amp": "bf16", "cuda_graphs": True, "joint_d": False},
    "amp_compile_graphs_two_d": {"amp": "bf16", "compile": True, "cuda_graphs": True, "joint_d": False},
    # all three options with TorchInductor options that cut launches: independent small kernels
    # (weight casts, bias gradients) combined into one; each reduction in one kernel, not two
    "inductor_combo_kernels": {"amp": "bf16", "compile": True, "cuda_graphs": True, "inductor": "combo_kernels=True"},
    "inductor_no_split_reductions": {"amp": "bf16", "compile": True, "cuda_graphs": True,
                                     "inductor": "split_reductions=False"},
    # D in autograd's layout too (G always is): on a CPU inductor's channels-last D costs a copy
    # of a weight gradient into the weight's layout every D step
    "inductor_no_layout_optimization": {"amp": "bf16", "compile": True, "cuda_graphs": True,
                                        "inductor": "layout_optimization=False"},
}
# modes timed for some models only, at batch 128: the compiled ones, to keep compile time
# bounded; the two-forward D, for a comparison with the default; the weight copies without compile
EVERY_MODEL = ("infogan", "gan", "minegan", "infowgan", "infowgan-gp")
ONLY_FOR = {"amp_compile": ("infogan",), "amp_compile_graphs": EVERY_MODEL,
            "amp_compile_graphs_weight_copies": EVERY_MODEL, "amp_graphs_weight_copies": ("infogan",),
            "compile_graphs": ("infogan",), "amp_graphs_two_d": ("infogan", "infowgan"),
            "amp_compile_graphs_two_d": ("infogan",), "inductor_combo_kernels": ("infogan",),
            "inductor_no_split_reductions": ("infogan",), "inductor_no_layout_optimization": ("infogan",)}


def make_step(model: str, B: int, mode: str, images: torch.Tensor, device: torch.device, image_size: int = 0,
              data_on: str = "device"):
    """(step(index) for the model in this mode, on a loader over images (of side image_size, 0:
    MNIST's) held where data_on says; the context to run its steps in, which sets the
    matrix-product precision a training run would). "reference" is the model's reference loop
    (MNIST's side only)."""
    loader = data.make_loader(images, B, device, 0, data_on)
    if mode == "reference":
        ref = REFERENCES[model](device, B)
        return lambda _index: ref.step([loader.next() for _ in range(ref.batches_per_step)]), contextlib.nullcontext()
    cfg = make_config(dict(model=model, batch_size=B, log_every=1000, image_size=image_size, **MODES[mode]))
    step = runner.for_config(cfg, build_model(cfg, device), loader, torch.Generator(device).manual_seed(0))
    return step, matmul_precision(cfg, device)


def sync():
    if ON_GPU:
        torch.cuda.synchronize()


def seconds_per_step(step, first: int, n_steps: int) -> float:
    sync()
    t = time.perf_counter()
    for i in range(first, first + n_steps):
        step(i)
    sync()
    return (time.perf_counter() - t) / n_steps


@pytest.mark.parametrize("mode", MODES)
# the WGAN models last: their steps take n_critic critic steps, and a time limit cuts the end
@pytest.mark.parametrize("model", ["infogan", "gan", "minegan", "infowgan-gp", "infowgan"])
@pytest.mark.parametrize("B", [128, 64, 256])  # batch 128 first: the targets are set there
def test_train_step(benchmark, B, model, mode):
    if not ON_GPU and (B != 64 or mode not in ("reference", "eager")):
        pytest.skip("CPU: batch 64 in fp32 eager only (bf16, compile and CUDA graphs say nothing here)")
    if ON_GPU and B != 128 and model != "infogan":
        pytest.skip("other models are measured at batch 128, to keep the GPU check short")
    if mode in ONLY_FOR and (B != 128 or model not in ONLY_FOR[mode]):
        pytest.skip(f"{mode}: timed for {', '.join(ONLY_FOR[mode])} at batch 128")
    measure(benchmark, model, B, mode)


# the image sides that have networks (fastinfo.nets), timed for InfoGAN beside MNIST's 28
@pytest.mark.parametrize("mode", ["eager", "amp_compile_graphs"])
@pytest.mark.parametrize("size", [32, 64])
def test_train_step_per_image_size(benchmark, size, mode):
    if not ON_GPU and mode != "eager":
        pytest.skip("CPU: fp32 eager only (bf16, compile and CUDA graphs say nothing here)")
    measure(benchmark, "infogan", 128 if ON_GPU else 64, mode, size)


# the data set in host memory (data.HostLoader: pinned staging, asynchronous copies) beside the
# device-resident one, on dSprites' 64x64 networks
@pytest.mark.parametrize("mode", ["eager", "amp_compile_graphs"])
@pytest.mark.parametrize("data_on", ["device", "host"])
def test_train_step_data_on(benchmark, data_on, mode):
    if not ON_GPU:
        pytest.skip("CPU: the host is the device")
    measure(benchmark, "infogan", 128, mode, 64, data_on)


def measure(benchmark, model: str, B: int, mode: str, size: int = 28, data_on: str = "device"):
    """Time a model's step in a mode on random images of side size; record images/s and, on a
    GPU, the peak memory, and at batch 128 (MNIST's side) the kernels a step launches."""
    device = torch.device("cuda" if ON_GPU else "cpu")
    if ON_GPU:  # the memory of earlier cases (CUDA-graph pools among it) stays out of this one's peak
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    images = torch.randint(0, 256, (4096, size, size), dtype=torch.uint8)
    step, precision = make_step(model, B, mode, images, device, image_size=size, data_on=data_on)
    with precision:
        n_warm = 8 if ON_GPU else 1  # past the CUDA-graph warm-up and capture, and compilation
        for i in range(n_warm):
            step(i)
        dt = seconds_per_step(step, n_warm, 30 if ON_GPU else 3)
        row = {"op": "train_step", "model": model, "B": B, "mode": mode, "us_call": dt * 1e6,
               "images_s": round(B / dt)}
        if size != 28:
            row["image_size"] = size
        if data_on != "device":
            row["data_on"] = data_on
        if ON_GPU:
            # the data set, the models, optimiser state, activations and graph pools: the step's own
            row["peak_mib"] = round((torch.cuda.max_memory_allocated() - base) / 2**20, 1)
            if B == 128 and size == 28:  # the profiler takes seconds to start: once per model and mode
                table = f"kernels-{model}-{mode}.txt" if model == "infogan" else None
                row.update(gpu_ops_and_busy_time(lambda: step(n_warm), table))
        if "graphs" not in mode:  # a replay runs below the dispatcher
            row["aten_ops_per_step"] = aten_ops_per_call(lambda: step(n_warm))
        add_result(row)
        benchmark.extra_info.update({**DEVICE, **row})
        calls = iter(range(n_warm + 100, 10**9))
        benchmark.pedantic(lambda: step(next(calls)), rounds=3, iterations=1)


@pytest.mark.parametrize("mode", ["reference", "eager", "amp_compile_graphs"])
def test_mnist_epoch(benchmark, mode, real_mnist):
    """Two epochs of InfoGAN at batch 128, data included: the data set moved to the device, every
    step, and a final sync. The first epoch also pays for compilation and capture."""
    if not ON_GPU:
        pytest.skip("an epoch takes minutes on a CPU")
    device, B = torch.device("cuda"), 128
    t = time.perf_counter()
    step, precision = make_step("infogan", B, mode, real_mnist, device)
    per_epoch = len(real_mnist) // B

    def epoch(e):
        for i in range(e * per_epoch, (e + 1) * per_epoch):
            step(i)
        sync()

    with precision:
        epoch(0)
        first = time.perf_counter() - t
        t = time.perf_counter()
        benchmark.pedantic(epoch, args=(1,), rounds=1, iterations=1)
        second = time.perf_counter() - t
    row = {"op": "mnist_epoch", "model": "infogan", "B": B, "mode": mode, "us_call": second * 1e6,
           "first_epoch_s": round(first, 2), "epoch_s": round(second, 2)}
    add_result(row)
    benchmark.extra_info.update({**DEVICE, **row})
