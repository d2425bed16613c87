"""MINE bounds: fused Triton vs eager reference vs torch.compile(reference), forward+backward.

The pairwise reference materialises the B x B score matrix; each pairwise case also records the
peak memory of one forward+backward."""

import pytest
import torch

from bench.measure import ON_GPU
from fastinfo import losses
from fastinfo.config import make_config
from fastinfo.losses import reference
from fastinfo.train import matmul_precision

_COMPILED = {}


def impl_of(name, fused, ref):
    if name == "fused":
        return fused
    if name == "eager":
        return ref
    if ref not in _COMPILED:
        _COMPILED[ref] = torch.compile(ref, fullgraph=True)
    return _COMPILED[ref]


def skip_unless_runnable(impl, big):
    if impl == "fused" and not ON_GPU:
        pytest.skip("the fused Triton kernel needs a CUDA GPU (the CPU runs the reference)")
    if big and not ON_GPU:
        pytest.skip("CPU: large sizes take long and say nothing about the fused path")


@pytest.mark.parametrize("impl", ["fused", "eager", "compiled"])
@pytest.mark.parametrize("bound", ["dv", "f"])
@pytest.mark.parametrize("B", [256, 65536])
def test_bound(record, B, bound, impl):
    skip_unless_runnable(impl, B > 4096)
    device = "cuda" if ON_GPU else "cpu"
    tj, tm = (torch.randn(B, device=device, requires_grad=True) for _ in range(2))
    log_ema = torch.tensor(0.5, device=device)
    if bound == "dv":
        fn = impl_of(impl, losses.mine_dv_bound, reference.mine_dv_bound)

        def call():
            b, _ = fn(tj, tm, log_ema, 0.01)
            return torch.autograd.grad(b, [tj, tm])
    else:
        fn = impl_of(impl, losses.mine_f_bound, reference.mine_f_bound)

        def call():
            return torch.autograd.grad(fn(tj, tm), [tj, tm])

    record({"op": f"mine_{bound}_bound", "B": B, "mode": "fwd_bwd", "impl": impl}, call, bytes_moved=5 * 4 * B)


@pytest.mark.parametrize("impl", ["fused", "eager", "compiled"])
@pytest.mark.parametrize("dtype", ["fp32", "tf32", "bf16"])  # tf32: fp32 inputs, TF32 products allowed
@pytest.mark.parametrize("d", [64, 256])
@pytest.mark.parametrize("B", [1024, 4096, 16384])
def test_pairwise(record, B, d, dtype, impl):
    skip_unless_runnable(impl, B > 1024)
    if impl == "compiled" and B != 1024:
        pytest.skip("torch.compile is compared at B = 1024 only, to keep compile time bounded")
    if dtype == "bf16" and (B, d) != (4096, 256):
        pytest.skip("bf16 is measured at B = 4096, d = 256 only")
    if dtype == "tf32" and (B != 4096 or not ON_GPU):
        pytest.skip("tf32 is measured on a GPU at B = 4096 only")
    device = "cuda" if ON_GPU else "cpu"
    # TF32 allowed as a training run's --tf32 allows it, for the fused kernel and torch alike
    with matmul_precision(make_config({"tf32": dtype == "tf32"}), torch.device(device)):
        time_pairwise(record, B, d, dtype, impl, device)


def time_pairwise(record, B, d, dtype, impl, device):
    dt = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16}[dtype]
    f, g = (torch.randn(B, d, device=device).div(d**0.5).to(dt).requires_grad_() for _ in range(2))
    fn = impl_of(impl, losses.mine_dv_bound_pairwise, reference.mine_dv_bound_pairwise)

    def call():
        return torch.autograd.grad(fn(f, g), [f, g])

    case = {"op": "mine_pairwise", "B": B, "d": d, "dtype": dtype, "impl": impl}
    if ON_GPU:
        call()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        call()
        torch.cuda.synchronize()
        case["peak_mib"] = round((torch.cuda.max_memory_allocated() - base) / 2**20, 1)
    # the fused path computes five B x B x d products: scores forward; scores again and the
    # gradient product for each of f and g
    record(case, call, graph=False, flops=5 * 2 * B * B * d)
