"""Training throughput: images/s and µs/step per model and mode at batch 64, 128 and 256.

Modes: the reference loop (bench/reference_loop.py, InfoGAN only), fastinfo eager, --amp (bf16),
--amp --compile. Each case also records peak memory. The ratio to the reference loop is taken
within one run (see the summary table)."""

import time

import pytest
import torch

from bench.conftest import DEVICE, ON_GPU, RESULTS
from bench.reference_loop import ReferenceInfoGAN
from fastinfo import data
from fastinfo.config import make_config
from fastinfo.train import build_model

MODES = {"reference": {}, "eager": {}, "amp": {"amp": "bf16"}, "amp_compile": {"amp": "bf16", "compile": True}}


def throughput(step, B, n_warm, n_steps):
    for _ in range(n_warm):
        step()
    if ON_GPU:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(n_steps):
        step()
    if ON_GPU:
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / n_steps
    peak = torch.cuda.max_memory_allocated() / 2**20 if ON_GPU else None
    return dt, peak


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", ["infogan", "gan", "infowgan", "infowgan-gp", "minegan"])
@pytest.mark.parametrize("B", [64, 128, 256])
def test_train_step(benchmark, B, model, mode):
    if not ON_GPU and (B != 64 or mode in ("amp", "amp_compile")):
        pytest.skip("CPU: batch 64 in fp32 only (bf16 autocast and compile time say nothing here)")
    if mode == "reference" and model != "infogan":
        pytest.skip("the reference loop is written for InfoGAN")
    if B != 128 and model != "infogan":
        pytest.skip("other models are measured at batch 128, to keep the GPU check short")
    if mode == "amp_compile" and (B != 128 or model not in ("infogan", "infowgan")):
        pytest.skip("compiled steps: infogan and infowgan at batch 128, to keep compile time bounded")
    device = torch.device("cuda" if ON_GPU else "cpu")
    images = torch.randint(0, 256, (4096, 28, 28), dtype=torch.uint8)
    loader = data.DeviceLoader(images, B, device, torch.Generator(device).manual_seed(0))
    gen = torch.Generator(device).manual_seed(0)
    if mode == "reference":
        ref = ReferenceInfoGAN(device, B)

        def step():
            ref.step(loader.next())
    else:
        m = build_model(make_config(dict(model=model, batch_size=B, **MODES[mode])), device)

        def step():
            m.step(loader.next, gen)

    n_steps = 50 if ON_GPU else 3
    dt, peak = throughput(step, B, n_warm=10 if ON_GPU else 1, n_steps=n_steps)
    row = {"op": "train_step", "model": model, "B": B, "mode": mode, "us_call": dt * 1e6,
           "images_s": round(B / dt), "peak_mib": None if peak is None else round(peak, 1)}
    RESULTS.append(row)
    benchmark.extra_info.update({**DEVICE, **row})
    benchmark.pedantic(step, rounds=3, iterations=1)
