"""The fused MINE bounds against the float64 reference, forward and backward."""

import math

import pytest
import torch
import triton
from fastinfo.kernels import mine as kernel

from fastinfo import graphs, losses
from fastinfo.losses import reference


def scores(B, dtype=torch.float32, shape1=False, device="cpu", scale=3.0):
    shape = (B, 1) if shape1 else (B,)
    tj = (torch.randn(shape, dtype=torch.float64, device=device)).to(dtype).requires_grad_()
    tm = (torch.randn(shape, dtype=torch.float64, device=device) * scale).to(dtype).requires_grad_()
    return tj, tm


def f64(*ts):
    return [t.detach().double().requires_grad_() for t in ts]


def assert_grads_match(out, ref, inputs, ref_inputs, atol, rtol):
    g = torch.randn((), dtype=torch.float64)
    got = torch.autograd.grad(out * g.to(out.dtype), inputs)
    want = torch.autograd.grad(ref * g, ref_inputs)
    for a, b, t in zip(got, want, inputs, strict=True):
        assert a.dtype == t.dtype
        torch.testing.assert_close(a.double(), b, atol=atol, rtol=rtol)


@pytest.mark.parametrize("B", [1, 37, 1500])
@pytest.mark.parametrize("ema", ["none", "value", "nan"])
@pytest.mark.parametrize("shape1", [False, True])
def test_dv_bound_matches_reference(B, ema, shape1):
    check_dv_bound(*scores(B, shape1=shape1), ema)


def check_dv_bound(tj, tm, ema):
    """The DV bound, its new average and its gradients equal the float64 reference's."""
    log_ema = {"none": None, "value": torch.tensor(0.7), "nan": torch.tensor(float("nan"))}[ema]
    bound, new = losses.mine_dv_bound(tj, tm, log_ema, 0.05)
    rtj, rtm = f64(tj, tm)
    ref, ref_new = reference.mine_dv_bound(rtj, rtm, None if log_ema is None else log_ema.double(), 0.05)
    torch.testing.assert_close(bound.double(), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(new.double(), ref_new, atol=1e-5, rtol=1e-5)
    assert not new.requires_grad
    assert_grads_match(bound, ref, [tj, tm], [rtj, rtm], atol=1e-6, rtol=1e-5)


def test_dv_bound_hand_computed_and_ema_semantics():
    tj, tm = torch.tensor([1.0, 3.0]), torch.tensor([0.0, math.log(3.0)]).requires_grad_()
    lme = math.log(2.0)  # log mean(1, 3)
    bound, new = losses.mine_dv_bound(tj, tm)
    assert bound.item() == pytest.approx(2.0 - lme) and new.item() == pytest.approx(lme)
    # with an average: logaddexp(log(0.9) + 0, log(0.1) + ln 2) = ln(0.9 + 0.2)
    bound, new = losses.mine_dv_bound(tj, tm, torch.tensor(0.0), 0.1)
    assert new.item() == pytest.approx(math.log(1.1)) and bound.item() == pytest.approx(2.0 - lme)
    (g,) = torch.autograd.grad(bound, tm)
    torch.testing.assert_close(g, -torch.tensor([1.0, 3.0]) / 1.1 / 2)  # -exp(t - new) / B


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_average_rates_at_the_ends_of_the_range(rate):
    """Rate 0 keeps the old average, rate 1 takes the batch's: the reference (which raised on
    the log of 0) and the fused op alike, and the gradient uses the average they return."""
    tj, tm = scores(37)
    rtj, rtm = f64(tj, tm)
    old = torch.tensor(0.7, dtype=torch.float64)
    lme = torch.logsumexp(rtm.detach(), 0) - math.log(37)
    ref, ref_new = reference.mine_dv_bound(rtj, rtm, old, rate)
    torch.testing.assert_close(ref_new, old if rate == 0 else lme)
    (g,) = torch.autograd.grad(ref, rtm, retain_graph=True)
    torch.testing.assert_close(g, -torch.exp(rtm.detach() - ref_new) / 37)
    bound, new = losses.mine_dv_bound(tj, tm, old.float(), rate)
    torch.testing.assert_close(new.double(), ref_new, atol=1e-6, rtol=1e-6)
    assert_grads_match(bound, ref, [tj, tm], [rtj, rtm], atol=1e-6, rtol=1e-5)


def test_f_bound_matches_reference_and_hand_value():
    tj, tm = torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0])
    assert losses.mine_f_bound(tj, tm).item() == pytest.approx(2.0 - 1.0)
    for B in (1, 53, 2100):
        tj, tm = scores(B)
        out = losses.mine_f_bound(tj, tm)
        rtj, rtm = f64(tj, tm)
        ref = reference.mine_f_bound(rtj, rtm)
        torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
        assert_grads_match(out, ref, [tj, tm], [rtj, rtm], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("ema", ["none", "value", "nan"])
def test_batch_split_over_programs(monkeypatch, ema):
    """A batch of many blocks goes to several programs, each walking several blocks, whose
    partial sums a second launch combines; the maxima of the programs' blocks differ widely."""
    monkeypatch.setattr(kernel, "REDUCE_BLOCK", 64)
    monkeypatch.setattr(kernel, "_n_programs", lambda device, B: min(triton.cdiv(B, 64), 3))
    tj, tm = scores(1000)
    with torch.no_grad():
        tm[130:140] += 60.0  # one program's block dominates the log-mean-exp
        tm[900:] -= 80.0
    check_dv_bound(tj, tm, ema)
    tj, tm = scores(1000, scale=1.0)
    out = losses.mine_f_bound(tj, tm)
    rtj, rtm = f64(tj, tm)
    ref = reference.mine_f_bound(rtj, rtm)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
    assert_grads_match(out, ref, [tj, tm], [rtj, rtm], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
@pytest.mark.parametrize("n_prog", [1, 3])
def test_float64_scores_keep_float64_precision(monkeypatch, device, n_prog):
    """log B and the logs of the rates reach the kernels in float64, in one program or over
    several (Triton types a Python float argument float32)."""
    monkeypatch.setattr(kernel, "REDUCE_BLOCK", 64)
    monkeypatch.setattr(kernel, "_n_programs", lambda device, B: min(triton.cdiv(B, 64), n_prog))
    tj, tm = scores(1000, dtype=torch.float64, device=device)
    old = torch.tensor(0.7, dtype=torch.float64, device=device)
    bound, new = losses.mine_dv_bound(tj, tm, old, 0.3)
    rtj, rtm = f64(tj, tm)
    ref, ref_new = reference.mine_dv_bound(rtj, rtm, old, 0.3)
    torch.testing.assert_close(bound, ref, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(new, ref_new, atol=1e-12, rtol=1e-12)
    assert_grads_match(bound, ref, [tj, tm], [rtj, rtm], atol=1e-12, rtol=1e-12)
    out, ref = losses.mine_f_bound(tj, tm), reference.mine_f_bound(rtj, rtm)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_scores(dtype):
    tj, tm = scores(301, dtype=dtype, scale=1.0)
    bound, _ = losses.mine_dv_bound(tj, tm)
    assert bound.dtype == torch.float32
    rtj, rtm = f64(tj, tm)
    ref, _ = reference.mine_dv_bound(rtj, rtm)
    torch.testing.assert_close(bound.double(), ref, atol=1e-4, rtol=1e-4)
    assert_grads_match(bound, ref, [tj, tm], [rtj, rtm], atol=1e-4, rtol=1e-2)


@pytest.mark.parametrize("dtypes", [(torch.bfloat16, torch.float64), (torch.float64, torch.float16),
                                    (torch.float32, torch.bfloat16)], ids=str)
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_mixed_dtypes(dtypes, device):
    """Each critic output keeps its dtype, and gets its gradient in it; with float64 the
    bound is float64."""
    tj, tm = (t.detach().to(dtype).requires_grad_()
              for t, dtype in zip(scores(41, scale=1.0, device=device), dtypes))
    rtj, rtm = f64(tj, tm)
    for fused, ref in ((lambda a, b: losses.mine_dv_bound(a, b)[0], lambda a, b: reference.mine_dv_bound(a, b)[0]),
                       (losses.mine_f_bound, reference.mine_f_bound)):
        bound, want = fused(tj, tm), ref(rtj, rtm)
        assert bound.dtype == (torch.float64 if torch.float64 in dtypes else torch.float32)
        torch.testing.assert_close(bound.double(), want, atol=1e-5, rtol=1e-5)
        assert_grads_match(bound, want, [tj, tm], [rtj, rtm], atol=1e-4, rtol=1e-2)


def test_large_scores_stay_finite():
    tj, tm = torch.full((64,), 500.0), torch.linspace(-800.0, 900.0, 64)
    bound, new = losses.mine_dv_bound(tj, tm)
    ref, ref_new = reference.mine_dv_bound(tj.double(), tm.double())
    assert torch.isfinite(bound) and torch.isfinite(new)
    torch.testing.assert_close(bound.double(), ref, rtol=1e-6, atol=1e-3)


NAN, INF = float("nan"), float("inf")
# (marginal scores, log_ema): a critic that diverges; the reference defines every answer
SPECIAL_MARGINALS = [
    ([0.5, NAN, 1.0], None),  # NaN: NaN
    ([0.5, INF, 1.0], 0.7),  # +inf: an infinite log-mean-exp, NaN bound (as the reference's)
    ([0.5, -INF, 1.0], 0.7),  # a -inf score counts 0
    ([-INF, -INF, -INF], None),  # every score -inf, no average: NaN
    ([-INF, -INF, -INF], 0.7),  # ... with one: the bound is +inf
    ([-1e31, -1e31, -1e31], None),  # very negative: no finite stand-in for -inf may win
    ([1e30, 1e30, 0.0], 0.7),
    ([0.5, 2.0, 1.0], INF),  # an infinite average: +inf, the gradient 0
    ([0.5, 2.0, 1.0], -INF),  # an average of -inf: the batch's alone
]


@pytest.mark.parametrize("case", range(len(SPECIAL_MARGINALS)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("n_prog", [1, 3])
def test_non_finite_and_huge_scores_match_the_reference(monkeypatch, case, dtype, n_prog):
    """Special scores among ordinary ones, in one program or split over three: the bound, the new
    average and the gradients equal the float64 reference's, NaN where it is NaN."""
    monkeypatch.setattr(kernel, "REDUCE_BLOCK", 16)
    monkeypatch.setattr(kernel, "_n_programs", lambda device, B: min(triton.cdiv(B, 16), n_prog))
    special, ema = SPECIAL_MARGINALS[case]
    tj, tm = scores(41)
    with torch.no_grad():
        tm[[3, 20, 38]] = torch.tensor(special)
        if all(abs(v) >= 1e30 for v in special):  # the whole batch so, as a diverged critic's
            tm[:] = special[0]
    tj, tm = (t.detach().to(dtype).requires_grad_() for t in (tj, tm))
    log_ema = None if ema is None else torch.tensor(ema)
    bound, new = losses.mine_dv_bound(tj, tm, log_ema, 0.05)
    rtj, rtm = f64(tj, tm)
    ref, ref_new = reference.mine_dv_bound(rtj, rtm, None if ema is None else log_ema.double(), 0.05)
    close = dict(atol=1e-5, rtol=1e-5, equal_nan=True)
    torch.testing.assert_close(bound.double(), ref, **close)
    torch.testing.assert_close(new.double(), ref_new, **close)
    got = torch.autograd.grad(bound, [tj, tm])
    want = torch.autograd.grad(ref, [rtj, rtm])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a.double(), b, atol=1e-3, rtol=1e-2, equal_nan=True)


def test_pairwise_very_negative_scores():
    """Scores of -2^103 (~ -1e31, exact in every float) everywhere, the diagonal left out as -inf
    (a finite stand-in of -1e30 would win): the reference's bound, 0."""
    f = torch.full((5, 1), -(2.0**53)).requires_grad_()
    g = torch.full((5, 1), 2.0**50).requires_grad_()
    out = losses.mine_dv_bound_pairwise(f, g)
    torch.testing.assert_close(out.double(), reference.mine_dv_bound_pairwise(*f64(f, g)).detach())


def check_pairwise(f, g, tol):
    """The pairwise bound and its gradients equal the float64 reference's."""
    out = losses.mine_dv_bound_pairwise(f, g)
    rf, rg = f64(f, g)
    ref = reference.mine_dv_bound_pairwise(rf, rg)
    torch.testing.assert_close(out.double(), ref, atol=tol, rtol=tol)
    assert_grads_match(out, ref, [f, g], [rf, rg], atol=tol, rtol=tol)


@pytest.mark.parametrize("B, d", [(2, 1), (37, 5), (70, 64), (33, 200)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pairwise_matches_reference(B, d, dtype):
    f = torch.randn(B, d, dtype=dtype).div(math.sqrt(d)).requires_grad_()
    g = torch.randn(B, d, dtype=dtype).requires_grad_()
    check_pairwise(f, g, 1e-5 if dtype == torch.float32 else 1e-10)


def test_pairwise_wider_than_the_kernel_takes_the_reference(monkeypatch):
    """Embeddings wider than the kernel's tile (512) give the reference's result, as on a CPU."""
    monkeypatch.setattr(kernel, "mine_dv_bound_pairwise", lambda *a: pytest.fail("the kernel was launched"))
    f = torch.randn(5, kernel.MAX_PAIRWISE_DIM + 1).div(23).requires_grad_()
    check_pairwise(f, torch.randn(5, kernel.MAX_PAIRWISE_DIM + 1).requires_grad_(), 1e-5)


@pytest.fixture
def tf32():
    """fp32 matrix products may use TF32 within (torch.backends.cuda.matmul.allow_tf32)."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    yield
    torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize("B, d", [(70, 64), (33, 200)])
def test_pairwise_fp32_on_tensor_cores_when_tf32_is_allowed(B, d, request):
    """Where TF32 is allowed the fp32 products run in TF32 with the tensor-core tiles, as torch's
    own products do. The interpreter multiplies in full precision: here the tiles are checked,
    not TF32's rounding."""
    f = torch.randn(B, d).div(math.sqrt(d)).requires_grad_()
    g = torch.randn(B, d).requires_grad_()
    assert kernel._pair_meta(f)[0]["PRECISION"] == "ieee"
    request.getfixturevalue("tf32")
    assert kernel._pair_meta(f)[0]["PRECISION"] == "tf32"
    check_pairwise(f, g, 1e-5)


def test_pairwise_bf16_and_non_contiguous():
    base = torch.randn(40, 2 * 24)
    f, g = base[:, ::2].requires_grad_(), base[:, 1::2].bfloat16().float()
    g = g.t().contiguous().t().requires_grad_()  # column-major
    out = losses.mine_dv_bound_pairwise(f, g)
    rf, rg = f64(f, g)
    ref = reference.mine_dv_bound_pairwise(rf, rg)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)
    fb, gb = torch.randn(37, 16).bfloat16().requires_grad_(), torch.randn(37, 16).bfloat16().requires_grad_()
    out = losses.mine_dv_bound_pairwise(fb, gb)
    ref = reference.mine_dv_bound_pairwise(*f64(fb, gb))
    torch.testing.assert_close(out.double(), ref, atol=2e-2, rtol=2e-2)


def test_gradcheck_float64():
    tj, tm = (torch.randn(9, dtype=torch.float64, requires_grad=True) for _ in range(2))
    ema = torch.tensor(0.2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: losses.mine_f_bound(a, b), (tj, tm))
    # the DV gradient is the bias-corrected one; with an EMA equal to the batch's own value
    # (rate 1) it is the true gradient of the bound
    assert torch.autograd.gradcheck(lambda a, b: losses.mine_dv_bound(a, b, ema, 1.0)[0], (tj, tm))
    f, g = (torch.randn(7, 3, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(losses.mine_dv_bound_pairwise, (f, g))


def test_opcheck_and_compile_fullgraph():
    tj, tm = scores(17)
    torch.library.opcheck(kernel.mine_dv_bound_op, (tj, tm, torch.tensor(0.1), 0.01),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    torch.library.opcheck(kernel.mine_f_bound_op, (tj, tm),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    f, g = torch.randn(9, 4, requires_grad=True), torch.randn(9, 4, requires_grad=True)
    torch.library.opcheck(kernel.mine_dv_bound_pairwise_op, (f, g),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))

    def fn(tj, tm, f, g):
        b, new = losses.mine_dv_bound(tj * 2, tm, None, 0.01)
        return b + losses.mine_f_bound(tj, tm) + losses.mine_dv_bound_pairwise(f, g), new

    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    out, new = compiled(tj, tm, f, g)
    want, want_new = fn(tj, tm, f, g)
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(new, want_new)
    torch.testing.assert_close(torch.autograd.grad(out, [tj, f]), torch.autograd.grad(want, [tj, f]))


@pytest.mark.parametrize(
    "call, error, msg",
    [
        (lambda: losses.mine_dv_bound(torch.randn(4), torch.randn(5)), ValueError, "4 samples"),
        (lambda: losses.mine_dv_bound(torch.randn(4, 2), torch.randn(4, 2)), ValueError, r"\[B\] or \[B, 1\]"),
        (lambda: losses.mine_dv_bound(torch.randn(0), torch.randn(0)), ValueError, "empty"),
        (lambda: losses.mine_dv_bound(torch.randn(4), torch.randn(4), ema_rate=1.5), ValueError,
         r"ema_rate must be a finite number in \[0.0, 1.0\], got 1.5"),
        (lambda: losses.mine_dv_bound(torch.randn(4), torch.randn(4), ema_rate=torch.tensor(0.1)), TypeError,
         "ema_rate must be a Python number, got Tensor"),
        (lambda: losses.mine_dv_bound(torch.randn(4), torch.randn(4), torch.zeros(2)), ValueError, "one-element"),
        (lambda: losses.mine_f_bound(torch.arange(4), torch.randn(4)), TypeError, "float16"),
        (lambda: losses.mine_f_bound(torch.randn(4), torch.randn(4, device="meta")), ValueError, "on meta"),
        (lambda: losses.mine_dv_bound_pairwise(torch.randn(1, 3), torch.randn(1, 3)), ValueError, "B >= 2"),
        (lambda: losses.mine_dv_bound_pairwise(torch.randn(4, 3), torch.randn(4, 2)), ValueError, "same shape"),
        (lambda: losses.mine_dv_bound([0.0] * 4, torch.randn(4)), TypeError, "t_joint must be a tensor, got list"),
        (lambda: losses.mine_dv_bound(torch.randn(4), torch.randn(4), torch.zeros((), device="meta")), ValueError,
         "log_ema is on meta, the critic outputs on cpu"),
        (lambda: losses.mine_dv_bound_pairwise([[0.0]] * 4, torch.randn(4, 1)), TypeError,
         "f_x must be a tensor, got list"),
        (lambda: losses.mine_dv_bound_pairwise(torch.randn(4, 3), torch.ones(4, 3, dtype=torch.long)), TypeError,
         "g_y must be float16, bfloat16, float32 or float64, got torch.int64"),
        (lambda: losses.mine_dv_bound_pairwise(torch.randn(4, 3, 1), torch.randn(4, 3, 1)), ValueError,
         r"f_x must be 2-D \[B, d\], got shape \(4, 3, 1\)"),
        (lambda: losses.mine_dv_bound_pairwise(torch.randn(4, 3), torch.randn(4, 3, dtype=torch.float64)), TypeError,
         "f_x is torch.float32, g_y torch.float64: give both the same dtype"),
        (lambda: losses.mine_dv_bound_pairwise(torch.randn(4, 3), torch.randn(4, 3, device="meta")), ValueError,
         "f_x is on cpu, g_y on meta"),
    ],
)
def test_bad_inputs(call, error, msg):
    with pytest.raises(error, match=msg):
        call()


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_matches_reference(dtype):
    # one program, then the batch split over programs whose partial sums a second launch combines
    for B in (4096, 4099, 70001):
        tj, tm = scores(B, dtype=dtype, device="cuda", scale=1.0)
        bound, new = losses.mine_dv_bound(tj, tm, torch.tensor(0.3, device="cuda"), 0.01)
        rtj, rtm = f64(tj, tm)
        ref, ref_new = reference.mine_dv_bound(rtj, rtm, torch.tensor(0.3, device="cuda", dtype=torch.float64), 0.01)
        torch.testing.assert_close(bound.double(), ref, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(new.double(), ref_new, atol=1e-4, rtol=1e-4)
        assert_grads_match(bound, ref, [tj, tm], [rtj, rtm], atol=1e-6, rtol=1e-2)
        out = losses.mine_f_bound(tj, tm)
        ref = reference.mine_f_bound(rtj, rtm)
        torch.testing.assert_close(out.double(), ref, atol=1e-4, rtol=1e-4)
    f, g = (torch.randn(1000, 64, device="cuda").div(8).to(dtype).requires_grad_() for _ in range(2))
    check_pairwise(f, g, 1e-4 if dtype == torch.float32 else 3e-2)


@pytest.mark.cuda
def test_cuda_pairwise_in_tf32(tf32):
    for d in (64, 256):
        f, g = (torch.randn(1000, d, device="cuda").div(d ** 0.5).requires_grad_() for _ in range(2))
        check_pairwise(f, g, 5e-3)


@pytest.mark.cuda
@pytest.mark.parametrize("B", [512, 70001])  # one program; programs and a combining launch
def test_cuda_graph_capture_of_the_bounds(B):
    tj, tm = scores(B, device="cuda")
    f, g = (torch.randn(256, 32, device="cuda", requires_grad=True) for _ in range(2))
    log_ema = torch.tensor(float("nan"), device="cuda")

    def run():
        b, new = losses.mine_dv_bound(tj, tm, log_ema, 0.01)
        log_ema.copy_(new)
        total = b + losses.mine_f_bound(tj, tm) + losses.mine_dv_bound_pairwise(f, g)
        return total, torch.autograd.grad(total, [tj, tm, f, g])

    graph, (total, grads) = graphs.capture(run)
    saved = log_ema.clone()  # after the warm-up call; the capture itself runs nothing
    graph.replay()
    torch.cuda.synchronize()
    log_ema.copy_(saved)
    want, want_grads = run()
    torch.testing.assert_close(total, want)
    for a, b in zip(grads, want_grads):
        torch.testing.assert_close(a, b)
