"""fastinfo.optim.Adam and its kernel: the fused update equals Adam's in float64 and torch's Adam
as it runs; bf16 copies are the updated parameters rounded as torch rounds them."""

import copy

import pytest
import torch
from fastinfo.kernels import adam as kernel

from fastinfo.optim import Adam
from tests.kernels.optimizer_checks import (
    SHAPES,
    assert_close_in_dtype,
    assert_graph_replays_equal_eager_steps,
    net,
    train,
)

HYPER = dict(lr=3e-3, beta1=0.8, beta2=0.95, eps=1e-6)
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def rows(seed: int, dtypes=DTYPES, grad_dtype=None):
    """(param, grad, exp_avg, exp_avg_sq, step) for each shape, the dtypes in turn."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, shape in enumerate(SHAPES):
        dtype = dtypes[i % len(dtypes)]
        p = (torch.randn(shape, generator=g) * 0.02).to(dtype)
        grad = torch.randn(shape, generator=g).to(grad_dtype or dtype)
        m = (torch.randn(shape, generator=g) * 0.1).to(dtype)
        v = torch.rand(shape, generator=g).mul(0.1).to(dtype)
        out.append((p, grad, m, v, torch.tensor(float(i))))
    return out


def reference(p, g, m, v, t, lr, beta1, beta2, eps, weight_decay):
    """One step in float64 from the same inputs, t already advanced."""
    p, g, m, v, t = p.double(), g.double(), m.double(), v.double(), t.double()
    g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    return p - lr / (1 - beta1**t) * m / (v.sqrt() / (1 - beta2**t).sqrt() + eps), m, v


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("block", [16, 0])
def test_every_step_equals_the_float64_reference(weight_decay, block):
    rs = rows(seed=torch.seed() % 2**31)
    for _ in range(3):
        for r in rs:
            r[4].add_(1)
        want = [reference(*r, **HYPER, weight_decay=weight_decay) for r in rs]
        kernel.adam_(*map(list, zip(*rs)), [], *HYPER.values(), weight_decay, block)
        for (p, _, m, v, _), w in zip(rs, want):
            for got, expected in zip((p, m, v), w):
                assert_close_in_dtype(got, expected, p.dtype)


@pytest.mark.parametrize("block", [16, 0])
def test_bf16_gradients_update_fp32_parameters_and_their_copies(block):
    rs = rows(seed=torch.seed() % 2**31, dtypes=[torch.float32], grad_dtype=torch.bfloat16)
    copies = [torch.full_like(r[0], float("nan"), dtype=torch.bfloat16) for r in rs]
    for r in rs:
        r[4].add_(1)
    want = [reference(*r, **HYPER, weight_decay=0.0) for r in rs]
    kernel.adam_(*map(list, zip(*rs)), copies, *HYPER.values(), 0.0, block)
    for r, c, w in zip(rs, copies, want):
        assert_close_in_dtype(r[0], w[0], torch.float32)
        assert torch.equal(c, r[0].to(torch.bfloat16))


def test_a_copy_is_its_parameter_rounded_as_torch_rounds():
    """lr = 0 leaves the parameters as they are: each copy must be torch's cast of them, ties to
    even, infinities, NaN, values past bf16's range and subnormals included."""
    one = torch.tensor(1.0)
    ties = one + torch.tensor([2.0**-8, 3 * 2.0**-8, 2.0**-8 + 2.0**-20])  # exact ties and a near one
    special = torch.tensor([float("inf"), float("-inf"), float("nan"), 3.4e38, -3.4e38, 1e-40, -0.0, 0.0])
    p = torch.cat([ties, special, torch.randn(1000) * 10.0 ** torch.randint(-30, 30, (1000,))])
    c = torch.empty_like(p, dtype=torch.bfloat16)
    kernel.adam_([p], [torch.zeros_like(p)], [torch.zeros_like(p)], [torch.zeros_like(p)], [torch.ones(())], [c],
                 0.0, 0.9, 0.999, 1e-8, 0.0)
    want = p.to(torch.bfloat16)
    assert torch.equal(c.isnan(), want.isnan())
    assert torch.equal(c[~want.isnan()].view(torch.int16), want[~want.isnan()].view(torch.int16))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "torch"])
def test_trains_as_torch_adam(fused):
    ours, theirs = net(), net()
    train(ours, Adam(ours.parameters(), lr=1e-2, betas=(0.5, 0.9), weight_decay=0.01, fused=fused), 5)
    train(theirs, torch.optim.Adam(theirs.parameters(), lr=1e-2, betas=(0.5, 0.9), weight_decay=0.01), 5)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        if fused:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        else:  # torch's own step
            assert torch.equal(a, b)


def test_options_the_kernel_lacks_take_torchs_step():
    ours, theirs = net(), net()
    train(ours, Adam(ours.parameters(), lr=1e-2, amsgrad=True, maximize=True, fused=None), 3)
    train(theirs, torch.optim.Adam(theirs.parameters(), lr=1e-2, amsgrad=True, maximize=True), 3)
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "torch"])
def test_state_dicts_load_both_ways_with_torch_adam(fused):
    a, b = net(), net()
    theirs = torch.optim.Adam(a.parameters(), lr=1e-2)
    train(a, theirs, 2)
    b.load_state_dict(a.state_dict())
    ours = Adam(b.parameters(), lr=1e-2, fused=fused)
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()))
    train(a, theirs, 2)
    train(b, ours, 2)
    for x, y in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    again = torch.optim.Adam(net().parameters(), lr=1e-2)
    again.load_state_dict(ours.state_dict())
    assert all(s["step"].item() == 4 for s in again.state.values())


def test_a_tensor_learning_rate_is_refused_by_the_fused_step():
    model = net()
    opt = Adam(model.parameters(), lr=torch.tensor(1e-2), fused=True)
    model(torch.randn(4, 7)).sum().backward()
    with pytest.raises(TypeError, match="lr as a Python number"):
        opt.step()


@pytest.mark.cuda
def test_cuda_graph_replays_equal_eager_steps():
    assert_graph_replays_equal_eager_steps(lambda ps: Adam(ps, lr=1e-2, capturable=True))
