"""How a fused op is reached: eager calls run its functions directly; a traced call, or one under
a dispatch mode, reaches the registered op (its fake implementation, its place in a graph)."""

import contextlib
import importlib
from unittest import mock

import pytest
import torch
from fastinfo.kernels import metric_ring
from fastinfo.kernels.entry import on_inputs_device
from torch._library.custom_ops import CustomOpDef
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode

from fastinfo import losses


def info_nll_inputs():
    B = 6
    return (torch.randn(B, 10, requires_grad=True), torch.randint(0, 10, (B, 1)),
            torch.randn(B, 2, requires_grad=True), torch.rand(B, 2) * 2 - 1, torch.randn(B, 2, requires_grad=True))


def mine_inputs():
    return torch.randn(9, requires_grad=True), torch.randn(9, requires_grad=True)


def pairwise_inputs():
    return torch.randn(7, 4, requires_grad=True), torch.randn(7, 4, requires_grad=True)


# (make inputs, fused call, its registered ops: forward, backward)
CALLS = {
    "info_nll": (info_nll_inputs, lambda *a: losses.info_nll(*a, cont_weight=0.1),
                 ("fastinfo::info_nll_fwd", "fastinfo::info_nll_bwd")),
    "mine_dv_bound": (mine_inputs, lambda *a: losses.mine_dv_bound(*a, torch.tensor(0.3), 0.01)[0],
                      ("fastinfo::mine_dv_bound", "fastinfo::mine_bound_bwd")),
    "mine_f_bound": (mine_inputs, losses.mine_f_bound, ("fastinfo::mine_f_bound", "fastinfo::mine_bound_bwd")),
    "mine_dv_bound_pairwise": (pairwise_inputs, losses.mine_dv_bound_pairwise,
                               ("fastinfo::mine_dv_bound_pairwise", "fastinfo::mine_dv_bound_pairwise_bwd")),
}


def value_and_grads(make, fn, inputs=None):
    inputs = make() if inputs is None else inputs
    leaves = [t for t in inputs if t.requires_grad]
    out = fn(*inputs)
    return out, torch.autograd.grad(out, leaves)


def ops_called(fn) -> set[str]:
    """The fastinfo ops fn calls through the dispatcher."""
    called = set()
    call = CustomOpDef.__call__

    def spy(op, *args, **kwargs):
        called.add(op._qualname)
        return call(op, *args, **kwargs)

    with mock.patch.object(CustomOpDef, "__call__", spy):
        fn()
    return {name for name in called if name.startswith("fastinfo::")}


@pytest.mark.parametrize("name", CALLS)
def test_eager_calls_skip_the_dispatcher(name):
    make, fn, ops = CALLS[name]
    assert ops_called(lambda: value_and_grads(make, fn)) == set()
    with FlopCounterMode(display=False):  # a dispatch mode sees both ops
        assert ops_called(lambda: value_and_grads(make, fn)) == set(ops)


@pytest.mark.parametrize("name", CALLS)
def test_under_fake_tensors_no_kernel_runs(name):
    """Shape inference with fake tensors: the ops' fake implementations answer, forward and
    backward; the kernels (which would read memory a fake tensor does not have) do not run."""
    make, fn, _ = CALLS[name]
    real = make()
    want, want_grads = value_and_grads(make, fn, real)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fake = [mode.from_tensor(t) for t in real]
        for t, r in zip(fake, real):
            t.requires_grad_(r.requires_grad)
        out, grads = value_and_grads(make, fn, fake)
    assert (out.shape, out.dtype) == (want.shape, want.dtype)
    assert [(g.shape, g.dtype) for g in grads] == [(g.shape, g.dtype) for g in want_grads]


@pytest.mark.parametrize("name", CALLS)
def test_under_a_dispatch_mode_the_results_are_the_eager_ones(name):
    make, fn, _ = CALLS[name]
    inputs = make()
    want, want_grads = value_and_grads(make, fn, inputs)
    with FlopCounterMode(display=False):
        out, grads = value_and_grads(make, fn, inputs)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(grads, want_grads)


@pytest.mark.parametrize("name", CALLS)
def test_torch_func_transforms_are_refused_with_the_way_out(name):
    make, fn, _ = CALLS[name]
    inputs = [t.detach() for t in make()]
    first = next(i for i, t in enumerate(inputs) if t.is_floating_point())

    def of_first(x):
        return fn(*inputs[:first], x, *inputs[first + 1 :])

    with pytest.raises(RuntimeError, match="torch.func's transforms .* fastinfo.losses.reference"):
        torch.func.grad(of_first)(inputs[first])


@pytest.mark.parametrize("name", CALLS)
def test_a_second_derivative_is_refused_not_left_out(name):
    """create_graph=True gives the first derivative; differentiating it again, even summed with
    terms that have a second derivative, raises instead of counting it as a constant."""
    make, fn, ops = CALLS[name]
    inputs = make()
    leaves = [t for t in inputs if t.requires_grad]
    _, want = value_and_grads(make, fn, inputs)
    grads = torch.autograd.grad(fn(*inputs), leaves, create_graph=True)
    torch.testing.assert_close(grads, want)
    penalty = sum((g ** 2).sum() + (x ** 3).sum() for g, x in zip(grads, leaves))
    with pytest.raises(RuntimeError, match=f"{ops[0]} has no second derivative .* fastinfo.losses.reference"):
        torch.autograd.grad(penalty, leaves)


def test_a_launcher_makes_its_tensors_gpu_current(monkeypatch):
    """Triton launches on the current CUDA device: a launcher whose first tensor (or first
    listed tensor) is on another GPU runs with that GPU current. Fake CUDA tensors, and the
    switch recorded, stand in for a machine with two GPUs."""
    current = []

    @contextlib.contextmanager
    def device(d):
        current.append(torch.device(d))
        yield
        current.pop()

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device", device)
    seen = []
    launcher = on_inputs_device(lambda *args: seen.append(list(current)))
    with FakeTensorMode():
        on_1, on_0 = torch.empty(2, device="cuda:1"), torch.empty(2, device="cuda:0")
    for args in ((None, [on_1], 3.0), (on_0, on_1), (torch.empty(2),), (1.0,)):
        launcher(*args)
    assert seen == [[torch.device("cuda:1")], [], [], []]


def test_every_launcher_runs_on_its_tensors_gpu():
    ops = [op for name in ("adam", "clip", "info_nll", "mine", "rmsprop")
           for op in vars(importlib.import_module(f"fastinfo.kernels.{name}")).values() if isinstance(op, CustomOpDef)]
    assert len({op._qualname for op in ops}) == 10
    for launcher in [op._init_fn for op in ops] + [metric_ring.write_row_]:
        assert getattr(launcher, "on_inputs_device", False), launcher.__name__
