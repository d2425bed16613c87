"""info_nll: fused Triton vs eager reference vs torch.compile(reference), fwd and fwd+bwd."""

import pytest
import torch

from bench.measure import ON_GPU
from fastinfo import losses
from fastinfo.losses import reference

if ON_GPU:
    from fastinfo.kernels import info_nll as kernel

# (B, cat_sizes, n_cont): MNIST's layout at InfoGAN batch sizes and beyond, and a wide code
SHAPES = [(64, (10,), 2), (256, (10,), 2), (4096, (10,), 2), (65536, (10,), 2), (4096, (1000,), 2)]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
_COMPILED = {}


def inputs(B, sizes, n_cont, dtype, device):
    logits = torch.randn(B, sum(sizes), device=device, dtype=dtype, requires_grad=True)
    codes = torch.stack([torch.randint(0, k, (B,), device=device) for k in sizes], 1)
    mean = torch.randn(B, n_cont, device=device, dtype=dtype, requires_grad=True)
    log_std = (0.1 * torch.randn(B, n_cont, device=device, dtype=dtype)).requires_grad_()
    cont = torch.rand(B, n_cont, device=device, dtype=dtype) * 2 - 1
    return (logits, codes, mean, cont, log_std), dict(cat_sizes=list(sizes), cat_weight=1.0, cont_weight=0.1)


def bytes_moved(B, sizes, n_cont, esize, backward):
    k = sum(sizes)
    fwd = B * (k * esize + 8 * len(sizes) + 3 * n_cont * esize + 4 * len(sizes))
    bwd = B * (k * esize + 8 * len(sizes) + 3 * n_cont * esize + 4 * len(sizes) + (k + 2 * n_cont) * esize)
    return fwd + (bwd if backward else 0)


def implementation(name):
    if name == "fused":
        return losses.info_nll
    if name == "eager":
        return reference.info_nll
    if "compiled" not in _COMPILED:
        _COMPILED["compiled"] = torch.compile(reference.info_nll, fullgraph=True)
    return _COMPILED["compiled"]


@pytest.mark.parametrize("impl", ["fused", "eager", "compiled"])
@pytest.mark.parametrize("mode", ["fwd", "fwd_bwd"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"B{s[0]}-K{sum(s[1])}")
def test_info_nll(record, shape, dtype, mode, impl):
    if impl == "fused" and not ON_GPU:
        pytest.skip("the fused Triton kernel needs a CUDA GPU (the CPU runs the reference)")
    if impl == "compiled" and mode == "fwd":
        pytest.skip("torch.compile is compared on fwd+bwd only, to keep compile time bounded")
    if not ON_GPU and shape[0] > 4096:
        pytest.skip("CPU: large batches take long and say nothing about the fused path")
    device = "cuda" if ON_GPU else "cpu"
    args, kw = inputs(*shape, DTYPES[dtype], device)
    fn = implementation(impl)
    params = [args[0], args[2], args[4]]

    if mode == "fwd":
        def call():
            with torch.no_grad():
                return fn(*args, **kw)
    else:
        def call():
            loss = fn(*args, **kw)
            return torch.autograd.grad(loss, params)

    esize = torch.finfo(DTYPES[dtype]).bits // 8
    record({"op": "info_nll", "B": shape[0], "K": sum(shape[1]), "dtype": dtype, "mode": mode, "impl": impl},
           call, bytes_moved=bytes_moved(*shape, esize, mode == "fwd_bwd"))


# Other tilings of the kernels than the wrapper's choice, at the two bandwidth-bound cases and at
# InfoGAN's batch: (rows a program takes, warps, programs per SM at most). Each row's time next
# to the chosen tiling's says whether the choice is the fastest the card allows.
TILINGS = {
    (4096, (1000,), 2): [(1, 1, 16), (1, 1, 32), (1, 2, 16), (1, 4, 8), (1, 4, 16), (2, 8, 4), (2, 8, 8),
                         (4, 16, 4), (4, 8, 4), (8, 16, 2)],
    (65536, (10,), 2): [(64, 4, 4), (64, 4, 16), (128, 8, 4), (128, 8, 8), (256, 16, 4), (512, 16, 4)],
    (64, (10,), 2): [(64, 4, 4), (64, 2, 4), (32, 2, 4), (64, 8, 4)],
}


@pytest.mark.skipif(not ON_GPU, reason="tilings of the fused Triton kernels are timed on a CUDA GPU")
@pytest.mark.parametrize("tiling", [(s, t) for s, ts in TILINGS.items() for t in ts],
                         ids=lambda st: f"B{st[0][0]}-K{sum(st[0][1])}-rows{st[1][0]}-warps{st[1][1]}-per_sm{st[1][2]}")
def test_info_nll_tiling(record, monkeypatch, tiling):
    shape, (block_b, num_warps, per_sm) = tiling
    chosen, chosen_per_sm = kernel._tiling(shape[1], shape[2], shape[0]), kernel.PROGRAMS_PER_SM
    monkeypatch.setattr(kernel, "_tiling", lambda *a: chosen._replace(block_b=block_b, num_warps=num_warps))
    monkeypatch.setattr(kernel, "PROGRAMS_PER_SM", per_sm)
    args, kw = inputs(*shape, torch.float32, "cuda")
    params = [args[0], args[2], args[4]]

    def call():
        return torch.autograd.grad(losses.info_nll(*args, **kw), params)

    is_chosen = (block_b, num_warps, per_sm) == (chosen.block_b, chosen.num_warps, chosen_per_sm)
    record({"op": "info_nll_tiling", "B": shape[0], "K": sum(shape[1]), "dtype": "fp32", "mode": "fwd_bwd",
            "rows": block_b, "warps": num_warps, "per_sm": per_sm, "chosen": is_chosen},
           call, bytes_moved=bytes_moved(*shape, 4, True))
