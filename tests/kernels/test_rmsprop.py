"""ClippedRMSprop / rmsprop_step_: the fused update equals RMSprop then clamp, in float64 and as torch runs it."""

import copy

import pytest
import torch
from fastinfo.kernels import rmsprop as kernel

from fastinfo.optim import ClippedRMSprop, rmsprop_step_
from tests.kernels.optimizer_checks import (
    SHAPES,
    assert_close_in_dtype,
    assert_graph_replays_equal_eager_steps,
    net,
    train,
)

HYPER = dict(lr=3e-3, alpha=0.9, eps=1e-6)
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def triples(seed: int):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, shape in enumerate(SHAPES):
        dtype = DTYPES[i % 3]
        p = (torch.randn(shape, generator=g) * 0.02).to(dtype)
        grad = torch.randn(shape, generator=g).to(dtype)
        v = torch.rand(shape, generator=g).mul(0.1).to(dtype)
        out.append((p, grad, v))
    return out


def reference(p, g, v, lr, alpha, eps, weight_decay, clip_value):
    """One step in float64 from the same inputs."""
    p, g, v = p.double(), g.double(), v.double()
    g = g + weight_decay * p
    v = alpha * v + (1 - alpha) * g * g
    p = p - lr * g / (v.sqrt() + eps)
    return (p.clamp(-clip_value, clip_value) if clip_value else p), v


@pytest.mark.parametrize("clip_value", [None, 0.01])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("block", [16, 0])
def test_every_step_equals_the_float64_reference(clip_value, weight_decay, block):
    ts = triples(seed=torch.seed() % 2**31)
    for _ in range(3):
        want = [reference(*t, **HYPER, weight_decay=weight_decay, clip_value=clip_value) for t in ts]
        kernel.rmsprop_(*map(list, zip(*ts)), [], HYPER["lr"], HYPER["alpha"], HYPER["eps"], weight_decay,
                        clip_value or 0.0, block)
        for (p, _, v), (want_p, want_v) in zip(ts, want):
            assert_close_in_dtype(p, want_p, p.dtype)
            assert_close_in_dtype(v, want_v, v.dtype)
        if clip_value:
            assert all(p.abs().max() <= clip_value for p, _, _ in ts if p.numel())


def test_a_clipped_value_is_exact_and_nan_stays_nan():
    p = torch.tensor([1.0, -1.0, float("nan"), 0.0], dtype=torch.bfloat16)
    g = torch.tensor([-1.0, 1.0, 1.0, 0.0], dtype=torch.bfloat16)
    rmsprop_step_([p], [g], [torch.zeros_like(p)], **HYPER, clip_value=0.01, fused=True)
    c = torch.tensor(0.01, dtype=torch.bfloat16)
    assert torch.equal(p[:2], torch.stack([c, -c])) and p[2].isnan() and p[3] == 0


@pytest.mark.parametrize("kernel_path", [True, False], ids=["fused", "torch"])
def test_trains_as_torch_rmsprop_then_clamp(kernel_path):
    ours, theirs = net(), net()
    train(ours, ClippedRMSprop(ours.parameters(), lr=1e-2, clip_value=0.05, fused=kernel_path or None), 5)
    opt = torch.optim.RMSprop(theirs.parameters(), lr=1e-2)

    def clamp():
        with torch.no_grad():
            for p in theirs.parameters():
                p.clamp_(-0.05, 0.05)

    train(theirs, opt, 5, clamp)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        if kernel_path:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
        else:  # the same operations in the same order
            assert torch.equal(a, b)


def test_layouts_the_kernel_cannot_walk_take_the_torch_path():
    """A gradient with other strides than its parameter, and a float64 parameter."""
    p = torch.randn(6, 5) * 0.01
    g = torch.randn(5, 6).t()
    p64, g64 = torch.randn(9, dtype=torch.float64), torch.randn(9, dtype=torch.float64)
    v, v64 = torch.rand(6, 5), torch.rand(9, dtype=torch.float64)
    want = [reference(*t, **HYPER, weight_decay=0.0, clip_value=None) for t in ((p, g, v), (p64, g64, v64))]
    rmsprop_step_([p, p64], [g, g64], [v, v64], **HYPER, fused=True)
    for got, (want_p, _) in zip((p, p64), want):
        torch.testing.assert_close(got.double(), want_p)


def test_parameters_without_gradients_are_left_alone():
    model = net()
    opt = ClippedRMSprop(model.parameters(), lr=1e-2, clip_value=0.01, fused=True)
    frozen = model[3].weight.detach().clone()
    opt.zero_grad()
    model(torch.randn(4, 7)).sum().backward()
    model[3].weight.grad = None
    opt.step()
    assert torch.equal(model[3].weight, frozen) and model[3].weight not in opt.state
    assert model[0].weight.abs().max() <= 0.01


def test_loads_a_torch_rmsprop_state_dict_and_keeps_its_clip_value():
    a, b = net(), net()
    torch_opt = torch.optim.RMSprop(a.parameters(), lr=1e-2)
    train(a, torch_opt, 2)
    b.load_state_dict(a.state_dict())
    ours = ClippedRMSprop(b.parameters(), lr=1e-2, clip_value=0.5)
    ours.load_state_dict(copy.deepcopy(torch_opt.state_dict()))
    assert ours.param_groups[0]["clip_value"] == 0.5
    train(a, torch_opt, 1)
    train(b, ours, 1)
    for x, y in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(x.clamp(-0.5, 0.5), y, rtol=1e-5, atol=1e-7)
    again = ClippedRMSprop(net().parameters(), lr=1e-2, clip_value=0.5)
    again.load_state_dict(ours.state_dict())
    assert again.param_groups[0]["clip_value"] == 0.5


@pytest.mark.parametrize("other", [dict(momentum=0.9), dict(centered=True), dict(maximize=True)], ids=str)
def test_a_torch_rmsprop_state_with_another_update_is_refused_before_loading(other):
    torch_opt = torch.optim.RMSprop(net().parameters(), lr=1e-2, **other)
    ours = ClippedRMSprop(net().parameters(), lr=1e-3, clip_value=0.5)
    name = next(iter(other))
    with pytest.raises(ValueError, match=f"without momentum, centering or maximize; param group 0 .*{name}"):
        ours.load_state_dict(torch_opt.state_dict())
    assert ours.param_groups[0]["lr"] == 1e-3  # nothing loaded


@pytest.mark.parametrize(
    "kwargs, error, msg",
    [
        (dict(lr=-1.0), ValueError, "lr must be a finite number in"),
        (dict(lr=torch.tensor(0.1)), TypeError, "lr must be a Python number"),
        (dict(alpha=1.5), ValueError, "alpha must be a finite number in"),
        (dict(eps=float("nan")), ValueError, "eps must be a finite number in"),
        (dict(weight_decay=-0.1), ValueError, "weight_decay must be a finite number in"),
        (dict(clip_value=0.0), ValueError, r"clip_value must be a finite number in \(0.0"),
        (dict(clip_value=float("inf")), ValueError, "clip_value must be a finite number in"),
    ],
)
def test_bad_hyperparameters(kwargs, error, msg):
    with pytest.raises(error, match=msg):
        ClippedRMSprop(net().parameters(), **kwargs)


def test_fused_needs_a_gpu_or_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="fused=True needs CUDA tensors"):
        rmsprop_step_([torch.zeros(3)], [torch.zeros(3)], [torch.zeros(3)], **HYPER, fused=True)


def test_tensors_on_two_devices_are_refused():
    with pytest.raises(ValueError, match="one device"):
        rmsprop_step_([torch.zeros(3)], [torch.zeros(3, device="meta")], [torch.zeros(3)], **HYPER)


def test_sparse_gradients_are_refused():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        ClippedRMSprop(emb.parameters()).step()


@pytest.mark.cuda
def test_cuda_graph_replays_equal_eager_steps():
    assert ClippedRMSprop([torch.zeros(1)]).fused is None  # the kernel, on CUDA tensors
    assert_graph_replays_equal_eager_steps(lambda ps: ClippedRMSprop(ps, lr=1e-2, clip_value=0.05))
