"""Pure-PyTorch references for every fused loss: the definition the kernels must equal.

Low-precision inputs are computed in float32 and float64 stays float64, as the kernels do.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fastinfo.losses.checks import to_acc

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def reduce_batch(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    """[B] per-sample values reduced as the losses' `reduction` says: "mean", "sum" or "none"."""
    if reduction == "mean":
        return per_sample.mean()
    return per_sample.sum() if reduction == "sum" else per_sample


def info_nll_terms(
    cat_logits: torch.Tensor | None,
    cat_codes: torch.Tensor | None,
    cont_mean: torch.Tensor | None,
    cont_codes: torch.Tensor | None,
    cont_log_std: torch.Tensor | None,
    cat_sizes: Sequence[int],
) -> torch.Tensor:
    """Per-sample, per-code NLL [B, len(cat_sizes) + n_cont], categorical codes first."""
    cols = []
    if cat_logits is not None:
        for i, logits in enumerate(torch.split(to_acc(cat_logits), list(cat_sizes), dim=1)):
            cols.append(F.cross_entropy(logits, cat_codes[:, i].long(), reduction="none"))
    if cont_mean is not None:
        mean, codes = to_acc(cont_mean), to_acc(cont_codes)
        if cont_log_std is None:
            nll = HALF_LOG_2PI + 0.5 * (codes - mean) ** 2
        else:
            log_std = to_acc(cont_log_std)
            nll = HALF_LOG_2PI + log_std + 0.5 * ((codes - mean) * torch.exp(-log_std)) ** 2
        cols.extend(nll.unbind(1))
    return torch.stack(cols, dim=1)


def info_nll_and_per_code(
    cat_logits,
    cat_codes,
    cont_mean,
    cont_codes,
    cont_log_std=None,
    *,
    cat_sizes=None,
    cat_weight=1.0,
    cont_weight=1.0,
    reduction="mean",
):
    """Reference for :func:`fastinfo.losses.info_nll_and_per_code`: (weighted NLL, per-code NLL)."""
    if cat_logits is None:
        cat_sizes = []
    elif cat_sizes is None:
        cat_sizes = [cat_logits.shape[1]]
    terms = info_nll_terms(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, cat_sizes)
    n_cat = len(cat_sizes)
    per_sample = cat_weight * terms[:, :n_cat].sum(1) + cont_weight * terms[:, n_cat:].sum(1)
    return reduce_batch(per_sample, reduction), terms.mean(0)


def info_nll(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std=None, **kw):
    """Reference for :func:`fastinfo.losses.info_nll` (same arguments, same result)."""
    return info_nll_and_per_code(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, **kw)[0]


def info_nll_per_code(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std=None, *, cat_sizes=None):
    """Reference for :func:`fastinfo.losses.info_nll_per_code`: batch-mean NLL of each code."""
    return info_nll_and_per_code(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, cat_sizes=cat_sizes)[1]


def _new_log_ema(lme: torch.Tensor, log_ema: torch.Tensor | None, ema_rate: float) -> torch.Tensor:
    lme = lme.detach()
    if log_ema is None:
        return lme
    # at rate 1 (or 0) the old average's (or the batch's) term has weight 0: log 0 = -inf
    keep = math.log1p(-ema_rate) if ema_rate < 1 else -math.inf
    take = math.log(ema_rate) if ema_rate > 0 else -math.inf
    mixed = torch.logaddexp(keep + log_ema.to(lme), take + lme)
    return torch.where(torch.isnan(log_ema.to(lme)), lme, mixed)


def mine_dv_bound(t_joint, t_marginal, log_ema=None, ema_rate=0.01):
    """Reference for :func:`fastinfo.losses.mine_dv_bound`: (plain DV bound whose gradient uses
    the moving average, new_log_ema)."""
    tj, tm = to_acc(t_joint.reshape(-1)), to_acc(t_marginal.reshape(-1))
    lme = torch.logsumexp(tm, 0) - math.log(tm.numel())
    new = _new_log_ema(lme, log_ema, ema_rate)
    # zero in value; its gradient is -exp(tm - new) / B, the bias-corrected one
    weights = torch.exp(tm - new).mean()
    return tj.mean() - lme.detach() - (weights - weights.detach()), new


def mine_f_bound(t_joint, t_marginal):
    """Reference for :func:`fastinfo.losses.mine_f_bound`: mean(T_joint) - mean(exp(T_marginal - 1))."""
    return to_acc(t_joint.reshape(-1)).mean() - torch.exp(to_acc(t_marginal.reshape(-1)) - 1).mean()


def mine_dv_bound_pairwise(f_x, g_y):
    """Reference for :func:`fastinfo.losses.mine_dv_bound_pairwise`; materialises all B x B scores."""
    scores = to_acc(f_x) @ to_acc(g_y).T  # [B, B]
    B = scores.shape[0]
    off = scores.masked_fill(torch.eye(B, dtype=torch.bool, device=scores.device), float("-inf"))
    return scores.diagonal().mean() - (torch.logsumexp(off.flatten(), 0) - math.log(B * (B - 1)))


def gradient_penalty(critic, real, fake, eps):
    """Reference for :func:`fastinfo.losses.gradient_penalty`, by autograd's double backward:
    critic is any callable from a batch to one score a sample."""
    x_hat = (eps * real + (1 - eps) * fake.to(real.dtype)).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((to_acc(grad).flatten(1).norm(dim=1) - 1) ** 2).mean()


def vae_kl(cat_logits, mean, log_var, *, cat_sizes=None, reduction="mean"):
    """Reference for :func:`fastinfo.losses.vae_kl`: (KL of the categorical posteriors from
    uniform, KL of the Gaussian posterior from N(0, I))."""
    ref = cat_logits if cat_logits is not None else mean
    zeros = torch.zeros(ref.shape[0], dtype=torch.float64 if ref.dtype == torch.float64 else torch.float32,
                        device=ref.device)
    kl_cat = kl_cont = zeros
    if cat_logits is not None:
        sizes = [cat_logits.shape[1]] if cat_sizes is None else list(cat_sizes)
        for size, logits in zip(sizes, torch.split(to_acc(cat_logits), sizes, dim=1)):
            log_p = F.log_softmax(logits, dim=1)
            p = log_p.exp()
            # a category of probability 0 (a -inf logit) adds 0; its log is kept out of the
            # product, where 0 * -inf would give NaN forward or backward
            kl_cat = kl_cat + (p * torch.where(p > 0, log_p, 0.0)).sum(1) + math.log(size)
    if mean is not None:
        mu, lv = to_acc(mean), to_acc(log_var)
        kl_cont = 0.5 * (mu * mu + lv.exp() - 1.0 - lv).sum(1)
    return reduce_batch(kl_cat, reduction), reduce_batch(kl_cont, reduction)
