"""Pure-PyTorch references for every fused loss: the definition the kernels must equal.

Low-precision inputs are computed in float32 and float64 stays float64, as the kernels do.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _acc(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float64 else t.float()


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
        for i, logits in enumerate(torch.split(_acc(cat_logits), list(cat_sizes), dim=1)):
            cols.append(F.cross_entropy(logits, cat_codes[:, i].long(), reduction="none"))
    if cont_mean is not None:
        mean, codes = _acc(cont_mean), _acc(cont_codes)
        if cont_log_std is None:
            nll = HALF_LOG_2PI + 0.5 * (codes - mean) ** 2
        else:
            log_std = _acc(cont_log_std)
            nll = HALF_LOG_2PI + log_std + 0.5 * ((codes - mean) * torch.exp(-log_std)) ** 2
        cols.extend(nll.unbind(1))
    return torch.stack(cols, dim=1)


def info_nll(
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
    """Reference for :func:`fastinfo.losses.info_nll` (same arguments, same result)."""
    cat_sizes = [cat_logits.shape[1]] if cat_sizes is None and cat_logits is not None else cat_sizes
    terms = info_nll_terms(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, cat_sizes or [])
    n_cat = len(cat_sizes or [])
    per_sample = cat_weight * terms[:, :n_cat].sum(1) + cont_weight * terms[:, n_cat:].sum(1)
    return _reduce(per_sample, reduction)


def info_nll_per_code(
    cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std=None, *, cat_sizes=None
):
    """Reference for :func:`fastinfo.losses.info_nll_per_code`: batch-mean NLL of each code."""
    cat_sizes = [cat_logits.shape[1]] if cat_sizes is None and cat_logits is not None else cat_sizes
    return info_nll_terms(
        cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, cat_sizes or []
    ).mean(0)


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample
