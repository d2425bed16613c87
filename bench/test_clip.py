"""clip_weights_: one fused launch vs a Python loop of clamp_ vs torch._foreach_clamp_min_/max_."""

import pytest
import torch

from bench.measure import ON_GPU
from fastinfo import losses
from fastinfo.codes import LatentSpec
from fastinfo.nets import Discriminator


def param_lists(device):
    critic = Discriminator(LatentSpec()).to(device)
    mnist = [*critic.body.parameters(), *critic.d_head.parameters()]
    g = torch.Generator().manual_seed(0)
    sizes = torch.randint(1, 50_000, (100,), generator=g).tolist()
    many = [torch.randn(n, device=device) for n in sizes]
    return {"mnist_critic": mnist, "100_tensors": many}


def loop(params, c):
    for p in params:
        p.data.clamp_(-c, c)


def foreach(params, c):
    torch._foreach_clamp_min_(params, -c)
    torch._foreach_clamp_max_(params, c)


IMPLS = {"fused": losses.clip_weights_, "loop": loop, "foreach": foreach}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", ["mnist_critic", "100_tensors"])
def test_clip(record, case, impl):
    if impl == "fused" and not ON_GPU:
        pytest.skip("the fused Triton kernel needs a CUDA GPU (the CPU uses torch._foreach_clamp_*)")
    params = param_lists("cuda" if ON_GPU else "cpu")[case]
    numel = sum(p.numel() for p in params)
    fn = IMPLS[impl]
    with torch.no_grad():
        record({"op": "clip_weights_", "case": case, "tensors": len(params), "numel": numel, "impl": impl},
               lambda: fn(params, 0.01), bytes_moved=8 * numel)
