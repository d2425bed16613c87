"""WGAN-GP's penalty and its gradient with respect to the critic's weights: the first-order form
(`losses.gradient_penalty`) eager and compiled, against autograd's double backward
(`reference.gradient_penalty`), which cannot be compiled.

The critic is the InfoGAN paper's with layer norm (the -gp models' default); B is one critic
step's batch. Each case also records the ATen operations of one eager call, the stand-in for
kernels a step on a GPU."""

import pytest
import torch
from torch import nn

from bench.measure import ON_GPU, aten_ops_per_call
from fastinfo import losses
from fastinfo.codes import LatentSpec
from fastinfo.losses import reference
from fastinfo.nets import Discriminator

IMPLS = {
    "first_order": losses.gradient_penalty,
    "double_backward": reference.gradient_penalty,
    # autograd's layout, as infowgan-gp compiles it (see fastinfo.wgan)
    "first_order_compiled": torch.compile(losses.gradient_penalty, fullgraph=True, dynamic=False,
                                          options={"layout_optimization": False}),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("B", [64, 128, 256])
def test_gradient_penalty(record, B, dtype, impl):
    if not ON_GPU and (B != 64 or dtype != "fp32"):
        pytest.skip("CPU: one size, to keep the run short")
    device = torch.device("cuda" if ON_GPU else "cpu")
    torch.manual_seed(0)
    D = Discriminator(LatentSpec(), norm="layer").to(device)
    critic = nn.Sequential(*D.body, D.d_head)
    params = list(critic.parameters())
    real, fake = (torch.rand(B, 1, 28, 28, device=device) * 2 - 1 for _ in range(2))
    eps = torch.rand(B, 1, 1, 1, device=device)
    fn = IMPLS[impl]

    def call():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            gp = fn(critic, real, fake, eps)
        return torch.autograd.grad(gp, params, allow_unused=True)

    case = {"op": "gradient_penalty", "B": B, "dtype": dtype, "impl": impl}
    call()  # compiles the compiled case before it is counted or timed
    if impl != "first_order_compiled":
        case["aten_ops"] = aten_ops_per_call(call)
    record(case, call)
