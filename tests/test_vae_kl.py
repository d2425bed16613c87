"""fastinfo.losses.vae_kl against torch.distributions' KL in float64, and its bad-input errors."""

import math

import pytest
import torch
from torch.distributions import Categorical, Normal, kl_divergence

from fastinfo import losses


def expected(cat_logits, mean, log_var, cat_sizes):
    """Per-sample (kl_cat, kl_cont) [B] each, in float64, from torch.distributions."""
    b = (cat_logits if cat_logits is not None else mean).shape[0]
    kl_cat = torch.zeros(b, dtype=torch.float64)
    if cat_logits is not None:
        for logits in torch.split(cat_logits.double(), cat_sizes, dim=1):
            kl_cat += kl_divergence(Categorical(logits=logits), Categorical(logits=torch.zeros_like(logits)))
    kl_cont = torch.zeros(b, dtype=torch.float64)
    if mean is not None:
        m, lv = mean.double(), log_var.double()
        kl_cont = kl_divergence(Normal(m, (0.5 * lv).exp()), Normal(torch.zeros_like(m), torch.ones_like(m))).sum(1)
    return kl_cat, kl_cont


def inputs(b, cat_sizes, n, dtype=torch.float64, scale=3.0):
    gen = torch.Generator().manual_seed(b * 31 + n)
    logits = (torch.randn(b, sum(cat_sizes), generator=gen) * scale).to(dtype)
    mean = torch.randn(b, n, generator=gen).to(dtype)
    log_var = torch.randn(b, n, generator=gen).to(dtype)
    return logits, mean, log_var


@pytest.mark.parametrize("b, cat_sizes, n", [(1, [10], 3), (7, [10], 10), (33, [3, 5, 2], 1), (5, [1], 4)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_the_float64_distributions(b, cat_sizes, n, reduction):
    logits, mean, log_var = inputs(b, cat_sizes, n)
    kl_cat, kl_cont = losses.vae_kl(logits, mean, log_var, cat_sizes=cat_sizes, reduction=reduction)
    want_cat, want_cont = expected(logits, mean, log_var, cat_sizes)
    reduce = {"mean": torch.mean, "sum": torch.sum, "none": lambda t: t}[reduction]
    torch.testing.assert_close(kl_cat, reduce(want_cat), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(kl_cont, reduce(want_cont), rtol=1e-12, atol=1e-12)


def test_either_part_alone_and_non_contiguous_inputs():
    logits, mean, log_var = inputs(6, [10], 4)
    wide = torch.randn(6, 20, dtype=torch.float64)[:, ::2]  # every other column: not contiguous
    kl_cat, kl_cont = losses.vae_kl(wide, None, None)
    assert kl_cont.item() == 0 and not wide.is_contiguous()
    torch.testing.assert_close(kl_cat, expected(wide, None, None, [10])[0].mean())
    kl_cat, kl_cont = losses.vae_kl(None, mean.t().contiguous().t(), log_var, reduction="none")
    assert torch.equal(kl_cat, torch.zeros(6, dtype=torch.float64))
    torch.testing.assert_close(kl_cont, expected(None, mean, log_var, [])[1])


def test_large_and_minus_infinite_logits():
    # offsets of 1e4 change no probability; a -inf logit is a category of probability 0
    logits, _, _ = inputs(8, [10], 1)
    kl = losses.vae_kl(logits + 1e4, None, None)[0]
    torch.testing.assert_close(kl, losses.vae_kl(logits, None, None)[0], rtol=1e-9, atol=1e-9)
    masked = logits.clone().requires_grad_()
    with torch.no_grad():
        masked[:, 0] = -math.inf
    kl = losses.vae_kl(masked, None, None, reduction="none")[0]
    torch.testing.assert_close(kl, expected(masked.detach(), None, None, [10])[0])
    kl.sum().backward()
    assert torch.isfinite(masked.grad).all() and (masked.grad[:, 0] == 0).all()
    # one category certain: KL = ln K
    certain = torch.full((2, 10), -1e30, dtype=torch.float64)
    certain[:, 3] = 0
    torch.testing.assert_close(losses.vae_kl(certain, None, None)[0], torch.tensor(math.log(10), dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_inputs_are_computed_in_float32(dtype):
    logits, mean, log_var = inputs(16, [10], 10, dtype)
    kl_cat, kl_cont = losses.vae_kl(logits, mean, log_var)
    assert kl_cat.dtype == kl_cont.dtype == torch.float32
    want_cat, want_cont = expected(logits, mean, log_var, [10])  # of the rounded inputs
    torch.testing.assert_close(kl_cat.double(), want_cat.mean(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kl_cont.double(), want_cont.mean(), rtol=1e-5, atol=1e-5)


def test_gradients_pass_gradcheck():
    logits, mean, log_var = (t.requires_grad_() for t in inputs(5, [3, 4], 2))
    assert torch.autograd.gradcheck(
        lambda a, m, v: losses.vae_kl(a, m, v, cat_sizes=[3, 4], reduction="none"), (logits, mean, log_var))


def test_compiles_whole():
    logits, mean, log_var = inputs(9, [10], 3, torch.float32)
    compiled = torch.compile(lambda a, m, v: losses.vae_kl(a, m, v), fullgraph=True, backend="aot_eager")
    for got, want in zip(compiled(logits, mean, log_var), losses.vae_kl(logits, mean, log_var)):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("args, kw, error, msg", [
    ((None, None, None), {}, ValueError, "give cat_logits, or mean and log_var"),
    ((torch.zeros(2, 3), torch.zeros(2, 2), None), {}, ValueError, "mean and log_var go together"),
    ((torch.zeros(2, 3), None, None), {"cat_sizes": [2, 2]}, ValueError, "must be positive and sum to"),
    ((torch.zeros(2, 3), None, None), {"cat_sizes": 3}, TypeError, "sequence of ints"),
    ((None, torch.zeros(2, 2), None), {"cat_sizes": [3]}, ValueError, "mean and log_var go together"),
    ((None, torch.zeros(2, 2), torch.zeros(2, 2)), {"cat_sizes": [3]}, ValueError, "cat_sizes was given without"),
    ((None, torch.zeros(2, 2), torch.zeros(2, 3)), {}, ValueError, "log_var must have mean's shape"),
    ((None, torch.zeros(2, 2), torch.zeros(3, 2)), {}, ValueError, "log_var has batch size 3, expected 2"),
    ((torch.zeros(3), None, None), {}, ValueError, "must be 2-D"),
    ((torch.zeros(2, 3, dtype=torch.int64), None, None), {}, TypeError, "must be float16, bfloat16"),
    ((torch.zeros(0, 3), None, None), {}, ValueError, "the batch is empty"),
    ((torch.zeros(2, 3), None, None), {"reduction": "max"}, ValueError, "reduction must be one of"),
])
def test_bad_inputs_are_one_clear_error(args, kw, error, msg):
    with pytest.raises(error, match=msg):
        losses.vae_kl(*args, **kw)
