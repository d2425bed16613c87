"""The benchmarks' fixtures (real MNIST, record) and their summary table; how they measure is
bench/measure.py."""

import time

import pytest
import torch

from bench.measure import DEVICE, ON_GPU, RESULTS, add_result, median_us
from fastinfo import data


@pytest.fixture
def real_mnist() -> torch.Tensor:
    """The 60,000 MNIST training images (uint8), or a skip when they cannot be found offline."""
    try:
        return data.load("mnist", train=True, download=False)[0]
    except data.DataError as e:
        pytest.skip(f"real MNIST not available: {e}")


@pytest.fixture
def record(benchmark):
    """record(case: dict, fn, bytes_moved=None): time fn, store the numbers, run pytest-benchmark."""

    def _record(case: dict, fn, bytes_moved: int | None = None, graph: bool = True, flops: int | None = None):
        fn()  # a first call's one-time costs (allocation, lazy initialisation, autotuning) are not timed
        start = time.perf_counter()
        fn()
        # keep pytest-benchmark's rounds of a slow call (the pairwise bound at B = 16384 takes 0.2 s) to a few
        slow = time.perf_counter() - start > 0.01
        benchmark.pedantic(fn, rounds=3 if slow else 20, iterations=1 if slow else 5, warmup_rounds=0 if slow else 2)
        if ON_GPU:
            torch.cuda.synchronize()
            row = {**case, "us_call": median_us(fn)}
            if graph:
                row["us_graph"] = median_us(fn, graph=True)
        else:
            # on a CPU the summary's number is the table's: pytest-benchmark's median (None where
            # pytest-benchmark is disabled, and the case times itself)
            stats = benchmark.stats
            row = {**case, "us_call": stats.stats.median * 1e6 if stats else median_us(fn)}
        best = min(row["us_call"], row.get("us_graph", float("inf")))
        if bytes_moved:
            row["gb_s"] = bytes_moved / best / 1e3
        if flops:
            row["tflop_s"] = flops / best / 1e6
        benchmark.extra_info.update({**DEVICE, **row})
        add_result(row)

    return _record


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section(f"fastinfo bench on {DEVICE['device']} (torch {DEVICE['torch']}, triton {DEVICE['triton']})")
    if ON_GPU:
        tr.write_line("call: median µs of back-to-back calls timed by CUDA events (triton's do_bench); graph: the "
                      "same call replayed from a CUDA graph. pytest-benchmark's table above times host calls "
                      "without a device sync: it measures something else.")
    else:
        tr.write_line("call: pytest-benchmark's median per call, the Median column of its table above.")
    numbers = ("us_call", "us_graph", "gb_s", "tflop_s")
    for row in RESULTS:
        cols = "  ".join(f"{k}={v}" for k, v in row.items() if k not in numbers)
        nums = f"call {row['us_call']:9.1f} us"
        if "us_graph" in row:
            nums += f"  graph {row['us_graph']:9.1f} us"
        if "gb_s" in row:
            nums += f"  {row['gb_s']:7.1f} GB/s"
        if "tflop_s" in row:
            nums += f"  {row['tflop_s']:6.1f} TFLOP/s"
        tr.write_line(f"{cols:70s} {nums}")
