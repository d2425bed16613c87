"""Adam's step over a network's parameters with their bf16 copies (--weight-copies) against what
autocast does instead, eager and compiled.

Under autocast, each step casts every convolution and linear weight to bf16 in the forward and
each bf16 weight gradient to fp32 in the backward, and torch's fused Adam updates the fp32
parameters: `torch_fused_and_casts` times those casts (one forward's) and the step together,
`compiled_and_casts` the same under torch.compile. `fused_copies` is fastinfo.optim.Adam reading
the copies' bf16 gradients and writing the copies in its update. `fused` and `torch_fused` are
the plain fp32 steps. GB/s counts what the fused step with copies must move: p, m and v read and
written, the bf16 gradient read and the copy written, 28 bytes a parameter.
"""

import pytest
import torch

from bench.measure import ON_GPU
from fastinfo.codes import LatentSpec
from fastinfo.nets import Discriminator, Generator
from fastinfo.optim import Adam
from fastinfo.weight_copies import WeightCopies

LR, BETAS = 2e-4, (0.5, 0.999)


def network(case: str, device) -> torch.nn.Module:
    spec = LatentSpec()
    return {"mnist_d": lambda: Discriminator(spec), "mnist_g": lambda: Generator(spec.input_dim)}[case]().to(device)


def with_gradients(case: str, device):
    """(parameters, their copies) with random gradients where the step reads them."""
    net = network(case, device)
    copies = WeightCopies()
    copies.add(net)
    for p in net.parameters():
        c = copies.of.get(p)
        (p if c is None else c).grad = torch.randn_like(p if c is None else c)
        if c is not None:  # the fp32 gradient the plain steps read
            p.grad = c.grad.float()
    return list(net.parameters()), copies


def autocast_step(params, copies, opt):
    """The casts the copies replace, then torch's step on the fp32 gradients."""
    copied = [p for p in params if p in copies.of]
    bf16_grads = [copies.of[p].grad for p in copied]

    def step():
        for p, g in zip(copied, bf16_grads):
            p.grad = g.float()
        opt.step()
        return [p.to(torch.bfloat16) for p in copied]

    return step


IMPLS = {
    "fused_copies": lambda ps, cs: Adam(ps, lr=LR, betas=BETAS, copies=cs.of, capturable=ON_GPU).step,
    "torch_fused_and_casts": lambda ps, cs: autocast_step(
        ps, cs, torch.optim.Adam(ps, lr=LR, betas=BETAS, fused=ON_GPU or None, capturable=ON_GPU)),
    "compiled_and_casts": lambda ps, cs: torch.compile(autocast_step(
        ps, cs, torch.optim.Adam(ps, lr=LR, betas=BETAS, foreach=True, capturable=ON_GPU))),
    "fused": lambda ps, cs: Adam(ps, lr=LR, betas=BETAS, capturable=ON_GPU).step,
    "torch_fused": lambda ps, cs: torch.optim.Adam(ps, lr=LR, betas=BETAS, fused=ON_GPU or None,
                                                   capturable=ON_GPU).step,
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", ["mnist_d", "mnist_g"])
def test_adam(record, case, impl):
    if impl.startswith("fused") and not ON_GPU:
        pytest.skip("the fused Triton kernels need a CUDA GPU (the CPU runs torch's multi-tensor ops)")
    params, copies = with_gradients(case, "cuda" if ON_GPU else "cpu")
    numel = sum(p.numel() for p in params)
    step = IMPLS[impl](params, copies)
    with torch.no_grad():
        record({"op": "adam_step", "case": case, "tensors": len(params), "copies": len(copies.of), "numel": numel,
                "impl": impl}, step, bytes_moved=28 * numel)
