"""A VAE's KL terms: the categorical posteriors from uniform and the Gaussian one from N(0, I).

PyTorch operations on every device for now: whether a fused kernel pays at a VAE's sizes is a
question for a GPU benchmark (the KL of a [64, 10] and a [64, 10] posterior is a few hundred
bytes of work)."""

import torch

from fastinfo.losses import reference
from fastinfo.losses.info import REDUCTIONS, _check_2d_float, _int_list


def vae_kl(cat_logits: torch.Tensor | None, mean: torch.Tensor | None, log_var: torch.Tensor | None, *,
           cat_sizes=None, reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
    """(KL(q(c|x) ‖ uniform), KL(q(z|x) ‖ N(0, I))) per sample, reduced over the batch.

    Per sample: kl_cat = sum over codes i of KL(softmax(logits slice i) ‖ uniform over K_i)
    = sum_i [sum_k p_k log p_k + log K_i]; kl_cont = sum_j (mu_j^2 + exp(log_var_j) - 1 - log_var_j) / 2.

    Args:
        cat_logits: [B, sum(cat_sizes)] float, or None (kl_cat is then 0). A -inf logit is a
            category of probability 0.
        mean, log_var: [B, n] float each, or both None (kl_cont is then 0).
        cat_sizes: categories per code; None means one code of size cat_logits.shape[1].
        reduction: "mean" over the batch, "sum", or "none" for [B] each.

    Returns:
        (kl_cat, kl_cont): 0-dim tensors, or [B] for reduction="none"; float32 (float64 for
        float64 inputs).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if (mean is None) != (log_var is None):
        raise ValueError("mean and log_var go together: give both or neither")
    if cat_logits is None and mean is None:
        raise ValueError("give cat_logits, or mean and log_var, or all three")
    ref_name, ref = ("cat_logits", cat_logits) if cat_logits is not None else ("mean", mean)
    _check_2d_float(ref_name, ref)
    if ref.shape[0] == 0:
        raise ValueError("the batch is empty (B = 0): the KL of no samples is undefined")
    if cat_logits is not None:
        sizes = [cat_logits.shape[1]] if cat_sizes is None else _int_list("cat_sizes", cat_sizes)
        if not sizes or min(sizes) < 1 or sum(sizes) != cat_logits.shape[1]:
            raise ValueError(f"cat_sizes {sizes} must be positive and sum to cat_logits.shape[1] = "
                             f"{cat_logits.shape[1]}")
        cat_sizes = sizes
    elif cat_sizes:
        raise ValueError("cat_sizes was given without cat_logits")
    if mean is not None:
        _check_2d_float("mean", mean, ref.shape[0], ref.device)
        _check_2d_float("log_var", log_var, ref.shape[0], ref.device)
        if log_var.shape != mean.shape:
            raise ValueError(f"log_var must have mean's shape {tuple(mean.shape)}, got {tuple(log_var.shape)}")
    return reference.vae_kl(cat_logits, mean, log_var, cat_sizes=cat_sizes, reduction=reduction)
