"""Loss values on hand-computed cases and the bad-input errors of the public API."""

import math
from unittest import mock

import numpy as np
import pytest
import torch

from fastinfo import losses
from fastinfo.losses import backend, compile_cache, reference

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
IMPLS = {"fused": losses.info_nll, "reference": reference.info_nll}


def test_gan_losses_hand_computed():
    real, fake = torch.tensor([0.0, math.log(3)]), torch.tensor([0.0])
    # -log sigmoid(0) = ln 2; -log sigmoid(ln 3) = ln(4/3); -log(1 - sigmoid(0)) = ln 2
    expected_d = (math.log(2) + math.log(4 / 3)) / 2 + math.log(2)
    assert losses.gan_d_loss(real, fake).item() == pytest.approx(expected_d)
    assert losses.gan_g_loss(torch.tensor([math.log(3)])).item() == pytest.approx(math.log(4 / 3))


@pytest.mark.parametrize("impl", IMPLS)
def test_info_nll_hand_computed(impl):
    fn = IMPLS[impl]
    # two categorical codes (4 and 2 categories) and one Gaussian code with sigma = 2
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, math.log(3)]])
    codes = torch.tensor([[2, 1]])
    mean, c, log_std = torch.tensor([[0.5]]), torch.tensor([[1.5]]), torch.tensor([[math.log(2)]])
    cat = math.log(4) + math.log(4 / 3)
    gauss = HALF_LOG_2PI + math.log(2) + 1 / 8
    out = fn(logits, codes, mean, c, log_std, cat_sizes=[4, 2], cat_weight=1.0, cont_weight=0.5)
    assert out.item() == pytest.approx(cat + 0.5 * gauss, rel=1e-6)
    # unit variance when no log-std is given
    out = fn(None, None, torch.tensor([[0.0]]), torch.tensor([[1.0]]))
    assert out.item() == pytest.approx(HALF_LOG_2PI + 0.5, rel=1e-6)
    # one code spanning all logits when cat_sizes is None; mean vs sum vs none
    two = torch.zeros(2, 4)
    per = fn(two, torch.tensor([[0], [3]]), None, None, reduction="none")
    torch.testing.assert_close(per, torch.full((2,), math.log(4)))
    assert fn(two, torch.tensor([[0], [3]]), None, None, reduction="sum").item() == pytest.approx(
        2 * math.log(4), rel=1e-6
    )


def test_info_nll_per_code_hand_computed():
    logits = torch.tensor([[0.0, 0.0, 0.0, math.log(3)], [0.0, 0.0, 0.0, 0.0]])
    codes = torch.tensor([[1, 1], [0, 0]])
    mean, c = torch.zeros(2, 1), torch.tensor([[1.0], [3.0]])
    per = losses.info_nll_per_code(logits, codes, mean, c, cat_sizes=[2, 2])
    expected = [math.log(2), (math.log(4 / 3) + math.log(2)) / 2, HALF_LOG_2PI + (0.5 + 4.5) / 2]
    torch.testing.assert_close(per, torch.tensor(expected))
    li = losses.mutual_info_lower_bound(per, torch.tensor([math.log(2)] * 3))
    torch.testing.assert_close(li, torch.tensor(math.log(2)) - per)


def _args(B=4, sizes=(3, 2), n=2):
    return dict(
        cat_logits=torch.randn(B, sum(sizes)),
        cat_codes=torch.zeros(B, len(sizes), dtype=torch.long),
        cont_mean=torch.randn(B, n),
        cont_codes=torch.randn(B, n),
        cat_sizes=list(sizes),
    )


@pytest.mark.parametrize(
    "change, error, msg",
    [
        (dict(cat_codes=torch.zeros(5, 2, dtype=torch.long)), ValueError, r"must be \[B, n_cat\]"),
        (dict(cont_codes=torch.randn(5, 2)), ValueError, "batch size 5, expected 4"),
        (dict(cont_codes=torch.randn(4, 3)), ValueError, "cont_mean's shape"),
        (dict(cat_codes=torch.zeros(4, 2)), TypeError, "cat_codes must be int64"),
        (dict(cat_logits=torch.randn(4, 5).long()), TypeError, "cat_logits must be float16"),
        (dict(cat_sizes=[3, 3]), ValueError, "sum to cat_logits.shape"),
        (dict(cat_codes=torch.tensor([[0, 0], [0, 2], [0, 0], [0, 0]])), ValueError,
         r"cat_codes\[1, 1\] = 2 is out of range .* 0..1"),
        (dict(cat_codes=torch.tensor([[-1, 0]] * 4)), ValueError, "out of range"),
        (dict(cat_logits=torch.randn(0, 5), cat_codes=torch.zeros(0, 2, dtype=torch.long)),
         ValueError, "batch is empty"),
        (dict(cont_codes=None), ValueError, "go together"),
        (dict(cat_logits=None, cat_codes=None, cont_mean=None, cont_codes=None, cat_sizes=None),
         ValueError, "at least one"),
        (dict(cont_mean=torch.randn(4)), ValueError, "must be 2-D"),
        (dict(cont_mean=torch.randn(4, 2, device="meta")), ValueError, "is on meta"),
        (dict(cat_weight=torch.tensor(1.0)), TypeError, "cat_weight must be a Python number, got Tensor"),
        (dict(cont_weight=True), TypeError, "cont_weight must be a Python number, got bool"),
        (dict(cont_weight=float("nan")), ValueError, "cont_weight must be a finite number, got nan"),
        (dict(cat_logits=torch.tensor(1.0)), ValueError, r"cat_logits must be 2-D \[B, n\], got shape \(\)"),
        (dict(cat_logits=None, cat_codes=None, cat_sizes=None, cont_mean=torch.tensor(1.0)), ValueError,
         r"cont_mean must be 2-D \[B, n\], got shape \(\)"),
        (dict(cat_logits=[[0.0] * 5] * 4), TypeError, "cat_logits must be a tensor or None, got list"),
        (dict(cont_codes=[[0.0] * 2] * 4), TypeError, "cont_codes must be a tensor or None, got list"),
        (dict(cat_codes=[[0, 0]] * 4), TypeError, "cat_codes must be a tensor of class indices, got list"),
        (dict(cat_codes=torch.zeros(4, 2, dtype=torch.long, device="meta")), ValueError,
         "cat_codes is on meta, the other inputs on cpu"),
        (dict(cat_codes=None), ValueError, "cat_logits and cat_codes go together"),
        (dict(cont_mean=None, cont_codes=None, cont_log_std=torch.randn(4, 2)), ValueError,
         "cont_log_std was given without cont_mean"),
        (dict(cat_logits=None, cat_codes=None), ValueError, "cat_sizes was given without cat_logits"),
        # a size that is not an int is refused, not truncated (3.7 would have read as 3)
        (dict(cat_sizes=[3.7, 1.3]), TypeError, r"cat_sizes must be a sequence of ints .*, got \[3.7, 1.3\]"),
        (dict(cat_sizes=5), TypeError, "cat_sizes must be a sequence of ints .*, got int 5"),
        (dict(cat_sizes="32"), TypeError, "cat_sizes must be a sequence of ints .*, got str '32'"),
        (dict(cat_sizes=[True, 4]), TypeError, "cat_sizes must be a sequence of ints"),
    ],
)
def test_info_nll_bad_inputs(change, error, msg):
    args = {**_args(), **change}
    with pytest.raises(error, match=msg):
        losses.info_nll(**args)


@pytest.mark.parametrize("sizes", [(3, 2), [torch.tensor(3), 2], np.array([3, 2]), iter([3, 2])],
                         ids=["tuple", "tensor", "numpy", "iterator"])
def test_info_nll_cat_sizes_take_any_sequence_of_ints(sizes):
    args = _args()
    torch.testing.assert_close(losses.info_nll(**{**args, "cat_sizes": sizes}), losses.info_nll(**args))


def test_info_nll_bad_reduction():
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.info_nll(**_args(), reduction="avg")


@pytest.mark.parametrize(
    "triton_version, numpy_version, refused",
    [
        ("3.6.0", "2.4.6", True),
        ("3.6.0", "2.3.5", False),
        ("3.7.0", "2.4.0", False),
        ("3.8.0", "2.5.0.dev0+git20261101", False),
        ("3.6.0+git4b3a1c2", "3.0.0", True),
        ("2.3.1", "1.26.4", False),
    ],
)
def test_interpreter_problem_names_both_releases_and_the_fix(triton_version, numpy_version, refused):
    problem = backend.interpreter_problem(triton_version, numpy_version)
    if not refused:
        assert problem is None
        return
    assert triton_version in problem and numpy_version in problem
    assert "numpy<2.4" in problem and "Triton >= 3.7" in problem


def test_interpreted_kernels_refused_with_the_reason_when_the_releases_clash(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(backend, "HAVE_TRITON", True)
    monkeypatch.setattr(backend, "INTERPRETER_PROBLEM", "Triton 3.6.0's CPU interpreter cannot run")
    with pytest.raises(RuntimeError, match="Triton 3.6.0's CPU interpreter"):
        backend.use_triton(torch.zeros(1))
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not backend.use_triton(torch.zeros(1))


def test_inputs_past_32_bit_offsets_take_the_reference(monkeypatch):
    """The kernels compute element offsets in 32 bits: an input whose last element lies
    INDEX_LIMIT (lowered here to 60) or more past its first takes the PyTorch reference."""
    from fastinfo.losses import info, mine

    monkeypatch.setattr(backend, "INDEX_LIMIT", 60)
    codes = torch.zeros(6, 1, dtype=torch.long)
    calls = [  # (kernel module, its function, a call within the limit, a call past it)
        (info._kernel, "info_nll", lambda: losses.info_nll(torch.randn(6, 10), codes, None, None),
         lambda: losses.info_nll(torch.randn(6, 20)[:, :10], codes, None, None)),  # 60 elements, span 110
        (mine._kernel, "mine_dv_bound", lambda: losses.mine_dv_bound(torch.randn(60), torch.randn(60)),
         lambda: losses.mine_dv_bound(torch.randn(61), torch.randn(61))),
        (mine._kernel, "mine_f_bound", lambda: losses.mine_f_bound(torch.randn(60), torch.randn(60)),
         lambda: losses.mine_f_bound(torch.randn(61), torch.randn(61))),
        (mine._kernel, "mine_dv_bound_pairwise", lambda: losses.mine_dv_bound_pairwise(*torch.randn(2, 6, 10)),
         lambda: losses.mine_dv_bound_pairwise(*torch.randn(2, 7, 10))),
    ]
    for module, name, within, past in calls:
        with mock.patch.object(module, name, wraps=getattr(module, name)) as kernel:
            within()
            assert kernel.call_count == 1, name
            past()
            assert kernel.call_count == 1, name


def test_compile_cache_tag_follows_the_fused_ops_sources(tmp_path):
    """torch.compile's caches know a custom op by its name: the tag that sets them apart holds a
    hash of the ops' sources, added once beside a tag of the user's."""
    (tmp_path / "op.py").write_text("x = 1\n")
    before = compile_cache.fingerprint([tmp_path])
    (tmp_path / "op.py").write_text("x = 2\n")
    assert compile_cache.fingerprint([tmp_path]) != before
    with torch.compiler.config.patch(cache_key_tag="users-tag"):
        losses.tag_compile_cache()
        losses.tag_compile_cache()
        assert torch.compiler.config.cache_key_tag == f"users-tag+fastinfo-{compile_cache.sources_fingerprint()}"


@pytest.mark.parametrize("dynamic", [None, True], ids=["automatic-dynamic", "dynamic"])
def test_numbers_that_change_between_compiled_calls(dynamic):
    """An annealed λ, a new EMA rate or clip value: torch.compile makes a number that changes
    between calls (with dynamic=True, every number it reads from a variable) a symbolic input.
    The argument checks take it without breaking the graph, and still refuse a bad one. (The
    fused ops' schemas take Python floats, which torch.compile specialises: each value is a
    compilation; the next test is the pattern for a weight that changes every step.)"""
    numbers = {}
    net = torch.nn.Linear(3, 2)

    def step(logits, codes, mean, cont, tj, tm):
        nll = losses.info_nll(logits, codes, mean, cont, cat_weight=numbers["lam"], cont_weight=numbers["lam"] / 2)
        bound, _ = losses.mine_dv_bound(tj, tm, torch.zeros(()), ema_rate=numbers["rate"])
        losses.clip_weights_(list(net.parameters()), numbers["clip"])
        return nll + bound

    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, dynamic=dynamic, backend="aot_eager")
    for lam in (1.0, 0.5, 0.25):
        numbers.update(lam=lam, rate=lam / 10, clip=lam / 8)
        args = (torch.randn(6, 10), torch.randint(0, 10, (6, 1)), torch.randn(6, 2), torch.randn(6, 2),
                torch.randn(6), torch.randn(6))
        torch.testing.assert_close(compiled(*args), step(*args))
        assert net.weight.abs().max() <= lam / 8
    numbers["lam"] = math.nan
    with pytest.raises(Exception, match="cat_weight must be a finite number, got nan"):
        compiled(*args)


def test_an_annealed_weight_outside_the_op_compiles_once():
    lam = {}

    def step(logits, codes, mean, cont):
        return lam["value"] * losses.info_nll(logits, codes, mean, cont)

    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    for i in range(12):  # more values than torch.compile's recompile_limit (8)
        lam["value"] = 1.0 / (i + 1)
        logits = torch.randn(6, 10, requires_grad=True)
        args = (logits, torch.randint(0, 10, (6, 1)), torch.randn(6, 2), torch.randn(6, 2))
        out, want = compiled(*args), step(*args)
        torch.testing.assert_close(out, want)
        torch.testing.assert_close(torch.autograd.grad(out, logits), torch.autograd.grad(want, logits))


@pytest.mark.parametrize("batch, cat_sizes", [(64, (10,)), (37, (7, 3))])
def test_categorical_information_against_a_float64_reference(batch, cat_sizes):
    """Per code H(mean q) - mean H(q) against the label-free score's numpy computation, with huge
    logits (one-hot rows, log 0 terms) and a gradient check."""
    from fastinfo.selection import information_score

    logits = torch.randn(batch, sum(cat_sizes), dtype=torch.float64) * 3
    logits[0, 0] = 1e4  # a confident row: q = one-hot, where 0 * log 0 must give 0, not NaN
    got = losses.categorical_information(logits.float(), cat_sizes)
    assert got.dtype == torch.float32 and got.shape == (len(cat_sizes),)
    for i, part in enumerate(logits.split(list(cat_sizes), dim=1)):
        want = information_score(torch.softmax(part, 1).numpy())
        torch.testing.assert_close(got[i].double(), torch.tensor(want, dtype=torch.float64), rtol=1e-5, atol=1e-5)
    small = torch.randn(9, sum(cat_sizes), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: losses.categorical_information(x, cat_sizes), (small,))
    half = losses.categorical_information(logits.to(torch.bfloat16), cat_sizes)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, got, rtol=0.05, atol=0.05)
