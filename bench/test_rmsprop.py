"""ClippedRMSprop's one launch vs torch.optim.RMSprop (multi-tensor) followed by a clip, eager and compiled.

The critic's case is WGAN's update of the InfoGAN critic (clip 0.01), G's the same optimiser
without a clip. GB/s counts the bytes the fused step must move: p, g and square_avg read, p and
square_avg written, 20 bytes a fp32 parameter.
"""

import pytest
import torch

from bench.measure import ON_GPU
from fastinfo import losses
from fastinfo.codes import LatentSpec
from fastinfo.nets import Discriminator, Generator
from fastinfo.optim import ClippedRMSprop

LR, CLIP = 5e-5, 0.01


def param_lists(device) -> dict[str, tuple[list[torch.Tensor], float | None]]:
    spec = LatentSpec()
    critic = Discriminator(spec).to(device)
    g = torch.Generator().manual_seed(0)
    sizes = torch.randint(1, 50_000, (100,), generator=g).tolist()
    return {
        "mnist_critic": ([*critic.body.parameters(), *critic.d_head.parameters()], CLIP),
        "mnist_g": (list(Generator(spec.input_dim).to(device).parameters()), None),
        "100_tensors": ([torch.nn.Parameter(torch.randn(n, device=device)) for n in sizes], CLIP),
    }


def torch_step(params, clip_value, clip):
    """torch.optim.RMSprop's multi-tensor step, then clip(params) when the case clips."""
    opt = torch.optim.RMSprop(params, lr=LR, foreach=True, capturable=ON_GPU)

    def step():
        opt.step()
        if clip_value:
            clip(params)

    return step


def foreach_clip(params):
    torch._foreach_clamp_min_(params, -CLIP)
    torch._foreach_clamp_max_(params, CLIP)


IMPLS = {
    "fused": lambda params, c: ClippedRMSprop(params, lr=LR, clip_value=c).step,
    "torch_foreach_clip": lambda params, c: torch_step(params, c, foreach_clip),
    "torch_clip_kernel": lambda params, c: torch_step(params, c, lambda ps: losses.clip_weights_(ps, CLIP)),
    "compiled": lambda params, c: torch.compile(torch_step(params, c, foreach_clip)),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", ["mnist_critic", "mnist_g", "100_tensors"])
def test_rmsprop(record, case, impl):
    if impl in ("fused", "torch_clip_kernel") and not ON_GPU:
        pytest.skip("the fused Triton kernels need a CUDA GPU (the CPU runs torch's multi-tensor ops)")
    params, clip_value = param_lists("cuda" if ON_GPU else "cpu")[case]
    if clip_value is None and impl == "torch_clip_kernel":
        pytest.skip("G's case has no clip")
    for p in params:
        p.grad = torch.randn_like(p)
    numel = sum(p.numel() for p in params)
    step = IMPLS[impl](params, clip_value)
    with torch.no_grad():
        record({"op": "rmsprop_step", "case": case, "tensors": len(params), "numel": numel, "clip": clip_value,
                "impl": impl}, step, bytes_moved=20 * numel)
