"""MINE's mutual-information bounds on critic outputs (fused: kernels/mine.py)."""


import torch

from fastinfo.losses import reference
from fastinfo.losses.backend import HAVE_TRITON, use_triton, within_index_limit
from fastinfo.losses.checks import FLOAT_DTYPES, check_number

if HAVE_TRITON:
    from fastinfo.kernels import mine as _kernel


def _scores(t_joint, t_marginal) -> tuple[torch.Tensor, torch.Tensor]:
    """Check and flatten critic outputs [B] or [B, 1] to contiguous [B]."""
    for name, t in (("t_joint", t_joint), ("t_marginal", t_marginal)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {t.dtype}")
        if not (t.dim() == 1 or (t.dim() == 2 and t.shape[1] == 1)):
            raise ValueError(f"{name} must be [B] or [B, 1] critic outputs, got shape {tuple(t.shape)}")
    if t_joint.shape[0] != t_marginal.shape[0]:
        raise ValueError(f"t_joint has {t_joint.shape[0]} samples, t_marginal {t_marginal.shape[0]}")
    if t_joint.shape[0] == 0:
        raise ValueError("the batch is empty (B = 0): the bound of no samples is undefined")
    if t_joint.device != t_marginal.device:
        raise ValueError(f"t_joint is on {t_joint.device}, t_marginal on {t_marginal.device}")
    return t_joint.reshape(-1).contiguous(), t_marginal.reshape(-1).contiguous()


def mine_dv_bound(t_joint, t_marginal, log_ema=None, ema_rate: float = 0.01):
    """Donsker-Varadhan bound mean(T_joint) - log mean exp(T_marginal), with MINE's bias-corrected
    gradient.

    Args:
        t_joint: [B] or [B, 1] critic outputs on joint pairs (x_i, y_i).
        t_marginal: [B] or [B, 1] critic outputs on shuffled pairs (x_i, y_perm(i)).
        log_ema: 0-dim tensor, the log of the moving average of E[exp T]; None or NaN starts it
            at this batch's value.
        ema_rate: weight of the new batch in the average (MINE: 0.01).

    Returns:
        (bound, new_log_ema): the plain DV bound (0-dim; float32, float64 for float64 inputs),
        whose gradient w.r.t. t_marginal is -exp(t_marginal - new_log_ema) / B; and the updated
        average (detached), to store for the next call.
    """
    t_joint, t_marginal = _scores(t_joint, t_marginal)
    check_number("ema_rate", ema_rate, 0.0, 1.0)
    if log_ema is not None:
        if not isinstance(log_ema, torch.Tensor) or log_ema.numel() != 1:
            raise ValueError("log_ema must be a one-element tensor or None")
        if log_ema.device != t_joint.device:
            raise ValueError(f"log_ema is on {log_ema.device}, the critic outputs on {t_joint.device}")
        log_ema = log_ema.detach().reshape(())
    if use_triton(t_joint) and within_index_limit(t_joint):
        return _kernel.mine_dv_bound(t_joint, t_marginal, log_ema, float(ema_rate))
    return reference.mine_dv_bound(t_joint, t_marginal, log_ema, ema_rate)


def mine_f_bound(t_joint, t_marginal):
    """MINE-f bound mean(T_joint) - mean(exp(T_marginal - 1)): unbiased gradients, no average.

    Args and dtypes as :func:`mine_dv_bound`; returns the 0-dim bound."""
    t_joint, t_marginal = _scores(t_joint, t_marginal)
    if use_triton(t_joint) and within_index_limit(t_joint):
        return _kernel.mine_f_bound(t_joint, t_marginal)
    return reference.mine_f_bound(t_joint, t_marginal)


def mine_dv_bound_pairwise(f_x, g_y):
    """DV bound of a separable critic T(x, y) = <f(x), g(y)> using every off-diagonal pair as a
    marginal sample: mean_i <f_i, g_i> - log((1 / (B (B - 1))) sum_{i != j} exp <f_i, g_j>).

    On a GPU the B x B score matrix is never stored (O(B d) memory); embeddings wider than 512
    or of 2^31 elements or more take the PyTorch reference (which stores it). fp32 products run
    in full precision, or in TF32 on tensor cores where torch.backends.cuda.matmul.allow_tf32
    allows it (torch.set_float32_matmul_precision("high"); fastinfo.train's --tf32), as torch's do.

    Args:
        f_x, g_y: [B, d] embeddings of x and y, B >= 2.
    Returns:
        The 0-dim bound (float32; float64 for float64 inputs).
    """
    for name, t in (("f_x", f_x), ("g_y", g_y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {t.dtype}")
        if t.dim() != 2:
            raise ValueError(f"{name} must be 2-D [B, d], got shape {tuple(t.shape)}")
    if f_x.shape != g_y.shape:
        raise ValueError(f"f_x {tuple(f_x.shape)} and g_y {tuple(g_y.shape)} must have the same shape")
    if f_x.dtype != g_y.dtype:
        raise TypeError(f"f_x is {f_x.dtype}, g_y {g_y.dtype}: give both the same dtype")
    if f_x.shape[0] < 2:
        raise ValueError(f"the pairwise bound needs B >= 2 samples, got {f_x.shape[0]}")
    if f_x.device != g_y.device:
        raise ValueError(f"f_x is on {f_x.device}, g_y on {g_y.device}")
    if use_triton(f_x) and f_x.shape[1] <= _kernel.MAX_PAIRWISE_DIM:
        f_x = f_x if f_x.stride(1) == 1 else f_x.contiguous()
        g_y = g_y if g_y.stride(1) == 1 else g_y.contiguous()
        if within_index_limit(f_x, g_y):
            return _kernel.mine_dv_bound_pairwise(f_x, g_y)[0]
    return reference.mine_dv_bound_pairwise(f_x, g_y)


