"""Benchmark helpers: device facts for every case, CUDA-synchronised timing, a summary table.

Each case records in extra_info the device, versions, shapes and dtype, and its median time per
call measured two ways on a GPU: ``us_call`` is host wall time per call with launch overhead
(CUDA events around back-to-back calls), ``us_graph`` the GPU time of the same call replayed from
a CUDA graph (launch overhead removed). Set BENCH_SUMMARY=FILE to also write the table as JSON.
"""

import json
import os
import time

import pytest
import torch

from fastinfo import data, graphs

RESULTS: list[dict] = []
# as `python -m fastinfo.train` runs: fixed shapes, so cuDNN picks its fastest algorithms once
# (the reference loops get the same)
torch.backends.cudnn.benchmark = True


def add_result(row: dict) -> None:
    """Keep a case's numbers for the summary, and write the JSON file at once: a run cut short by
    a time limit keeps the cases it finished."""
    RESULTS.append(row)
    if os.environ.get("BENCH_SUMMARY"):
        with open(os.environ["BENCH_SUMMARY"], "w") as f:
            json.dump({"device": DEVICE, "results": RESULTS}, f, indent=1)


def device_info() -> dict:
    info = {"torch": torch.__version__}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if not torch.cuda.is_available():
        return {**info, "device": "cpu"}
    info["device"] = torch.cuda.get_device_name()
    try:
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        info["driver"] = pynvml.nvmlSystemGetDriverVersion()
        info["sm_clock_mhz"] = pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)
        info["mem_clock_mhz"] = pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM)
        info["memory_gib"] = round(pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**30, 1)
    except Exception as e:  # nvidia-ml-py missing or no NVML access: the device name still stands
        info["nvml"] = f"unavailable ({type(e).__name__})"
    return info


DEVICE = device_info()
ON_GPU = DEVICE["device"] != "cpu"


def median_us(fn, graph: bool = False) -> float:
    """Median microseconds per call of fn (on a GPU: CUDA events, or a CUDA graph's replays)."""
    if not ON_GPU:
        fn()
        times = []
        for _ in range(20):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return sorted(times)[len(times) // 2] * 1e6
    import triton.testing

    if not graph:
        return triton.testing.do_bench(fn, warmup=50, rep=200, return_mode="median") * 1e3
    n = 20  # calls per graph, so that one replay's own launch is amortised
    graph, _ = graphs.capture(lambda: [fn() for _ in range(n)])
    return triton.testing.do_bench(graph.replay, warmup=50, rep=200, return_mode="median") * 1e3 / n


def gpu_ops_and_busy_time(fn, table: str | None = None) -> dict:
    """GPU operations (kernels, copies, memsets) one call of fn runs, from the profiler, and the
    microseconds they keep the GPU busy (against the call's time: the gaps between them); the
    kernels inside a replayed CUDA graph count one by one. With table set (a file name), the
    profiler's table of those operations, longest total GPU time first, is written beside the
    BENCH_SUMMARY file: where a step's time goes, kernel by kernel."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    if table and os.environ.get("BENCH_SUMMARY"):
        path = os.path.join(os.path.dirname(os.path.abspath(os.environ["BENCH_SUMMARY"])), table)
        with open(path, "w") as f:
            f.write(prof.key_averages().table(sort_by="self_device_time_total", row_limit=60, max_name_column_width=90))
    ops = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    return {"gpu_ops_per_step": len(ops), "gpu_busy_us": round(sum(e.time_range.elapsed_us() for e in ops), 1)}


# ATen calls that only make views or allocate: they launch no kernel
_NO_KERNEL = {"view", "_unsafe_view", "t", "detach", "expand", "slice", "unsqueeze", "squeeze", "permute",
              "transpose", "as_strided", "select", "alias", "unbind", "split", "split_with_sizes", "reshape",
              "lift_fresh", "empty", "empty_strided", "new_empty", "new_empty_strided", "empty_like",
              "_local_scalar_dense", "_record_function_enter_new", "_record_function_exit"}


def aten_ops_per_call(fn) -> int:
    """ATen operations that compute (one kernel or more each on a GPU) in one eager call of fn;
    a device-free stand-in for the profiler's kernel count."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ not in _NO_KERNEL:
                Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


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
        row = {**case, "us_call": median_us(fn)}
        if ON_GPU and graph:
            row["us_graph"] = median_us(fn, graph=True)
        best = min(row["us_call"], row.get("us_graph", float("inf")))
        if bytes_moved:
            row["gb_s"] = bytes_moved / best / 1e3
        if flops:
            row["tflop_s"] = flops / best / 1e6
        benchmark.extra_info.update({**DEVICE, **row})
        add_result(row)
        # the median above is the reported number; keep pytest-benchmark's own rounds of a slow
        # call (the pairwise bound at B = 16384 takes 0.2 s) to a few
        slow = best > 10_000
        benchmark.pedantic(fn, rounds=3 if slow else 20, iterations=1 if slow else 5, warmup_rounds=0 if slow else 2)
        if ON_GPU:
            torch.cuda.synchronize()

    return _record


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section(f"fastinfo bench on {DEVICE['device']} (torch {DEVICE['torch']}, triton {DEVICE['triton']})")
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
