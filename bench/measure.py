"""How the benchmarks measure: device facts for every case, CUDA-synchronised timing, the
profiler's GPU operations, ATen operation counts, and the results a run collects.

Each case records the device, versions, shapes and dtype, and its median time per call measured
two ways on a GPU: ``us_call`` is host wall time per call with launch overhead (CUDA events
around back-to-back calls), ``us_graph`` the GPU time of the same call replayed from a CUDA graph
(launch overhead removed). Set BENCH_SUMMARY=FILE to also write the table as JSON.
"""

import json
import os
import time

import torch

from fastinfo import graphs

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
