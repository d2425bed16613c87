"""clip_weights_: one launch clamps every tensor exactly as torch.clamp would."""

from unittest import mock

import pytest
import torch
from fastinfo.kernels import clip as kernel

from fastinfo import graphs, losses


def tensors():
    shapes = [(37,), (3, 5), (), (0,), (129, 3), (1,), (4, 4, 3, 3)]
    dtypes = [torch.float32, torch.bfloat16, torch.float16]
    out = [torch.randn(s, dtype=torch.float32).mul(0.03).to(dtypes[i % 3]) for i, s in enumerate(shapes)]
    out[0][3] = float("nan")  # NaN stays NaN, like torch.clamp
    out[4][0, 0] = float("inf")
    return out


@pytest.mark.parametrize("clip", [0.01, 0.02, 1e-3])
@pytest.mark.parametrize("block", [16, kernel.BLOCK, 0])
def test_every_element_equals_clamp_of_its_original(clip, block):
    ps = tensors()
    want = [p.clamp(-clip, clip) for p in ps]
    kernel.clip_weights_(ps, clip, block)
    for p, w in zip(ps, want):
        assert p.dtype == w.dtype and torch.equal(p.nan_to_num(7.0), w.nan_to_num(7.0)), p.dtype


def test_public_api_on_parameters_and_the_table_cache():
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.BatchNorm1d(7), torch.nn.Linear(7, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(10)
    want = [p.detach().clamp(-0.01, 0.01) for p in net.parameters()]
    losses.clip_weights_(net.parameters(), 0.01)
    assert all(torch.equal(p, w) for p, w in zip(net.parameters(), want))
    assert all(p.requires_grad and p.is_leaf for p in net.parameters())
    n_tables = len(kernel._TABLES)
    losses.clip_weights_(net.parameters(), 0.01)  # same list: the cached table serves
    assert len(kernel._TABLES) == n_tables


def test_cpu_fallback_without_triton(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    ps = tensors()
    want = [p.clamp(-0.01, 0.01) for p in ps]
    losses.clip_weights_(ps, 0.01)
    assert all(torch.equal(p.nan_to_num(7.0), w.nan_to_num(7.0)) for p, w in zip(ps, want))


@pytest.mark.parametrize(
    "params, clip, error, msg",
    [
        ([torch.randn(3)], 0.0, ValueError, r"clip_value must be a finite number in \(0.0, inf\]"),
        ([torch.randn(3)], float("inf"), ValueError, r"clip_value must be a finite number in \(0.0, inf\]"),
        ([torch.arange(3)], 0.01, TypeError, r"params\[0\] is torch.int64; accepted: floating-point tensors"),
        ([torch.randn(3, requires_grad=True) * 2], 0.01, ValueError, "non-leaf"),
        ([torch.randn(3), torch.randn(3, device="meta")], 0.01, ValueError, "is on meta"),
        ([3.0], 0.01, TypeError, "not a tensor"),
    ],
)
def test_bad_inputs(params, clip, error, msg):
    with pytest.raises(error, match=msg):
        losses.clip_weights_(params, clip)


def test_any_layout_and_float64():
    """Dense layouts other than contiguous (a channels-last convolution weight, a transpose)
    take the kernel; float64 and views with gaps take torch's clamps; all are clipped."""
    conv = torch.nn.Conv2d(3, 8, 3).to(memory_format=torch.channels_last)
    gappy = torch.randn(6, 6)[:, ::2]
    params = [conv.weight, torch.randn(5, 4).t(), torch.randn(7, dtype=torch.float64), gappy]
    want = [p.detach().clamp(-0.01, 0.01) for p in params]
    clipped = []
    real = kernel.clip_weights_

    def spy(ps, *args):
        clipped.extend(ps)
        return real(ps, *args)

    with mock.patch.object(kernel, "clip_weights_", spy):
        losses.clip_weights_(params, 0.01)
    assert [id(p) for p in clipped] == [id(p) for p in params[:2]]
    assert all(torch.equal(p, w) for p, w in zip(params, want))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_one_tensor_for_a_list():
    """One parameter, as torch.nn.utils.clip_grad_norm_ takes it: clipped whole, and left a
    parameter (its rows, had it been iterated, are non-leaf views)."""
    p = torch.nn.Parameter(torch.randn(4, 3))
    want = p.detach().clamp(-0.01, 0.01)
    losses.clip_weights_(p, 0.01)
    assert torch.equal(p, want) and p.is_leaf


def test_empty_list_is_a_no_op():
    losses.clip_weights_([], 0.01)
    losses.clip_weights_([torch.empty(0)], 0.01)


@pytest.mark.cuda
def test_cuda_graph_capture_and_replay():
    ps = [torch.randn(n, device="cuda").to(d) for n, d in
          [(1000, torch.float32), (4097, torch.bfloat16), (33, torch.float16), (6_000_000, torch.float32)]]
    # the warm-up call compiles the kernel and builds the table
    g, _ = graphs.capture(lambda: losses.clip_weights_(ps, 0.01))
    for _ in range(2):
        fresh = [torch.randn(p.shape, device="cuda").to(p.dtype) for p in ps]
        for p, f in zip(ps, fresh):
            p.copy_(f)
        g.replay()
        torch.cuda.synchronize()
        assert all(torch.equal(p, f.clamp(-0.01, 0.01)) for p, f in zip(ps, fresh))
