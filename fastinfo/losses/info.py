"""The GAN losses and InfoGAN's Q negative log-likelihood (fused: kernels/info_nll.py)."""

import operator

import torch
import torch.nn.functional as F

from fastinfo.kernels.entry import op_must_be_seen
from fastinfo.losses import reference
from fastinfo.losses.backend import HAVE_TRITON, use_triton, within_index_limit
from fastinfo.losses.checks import FLOAT_DTYPES, check_number

if HAVE_TRITON:
    from fastinfo.kernels import info_nll as _kernel

REDUCTIONS = ("mean", "sum", "none")
INDEX_DTYPES = (torch.int32, torch.int64)


def gan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss -E[log D(x)] - E[log(1 - D(G(z)))] on logits (sigmoid inside)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def gan_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss -E[log D(G(z))] on logits."""
    return F.softplus(-fake_logits).mean()


def _check_2d_float(name, t, batch=None, device=None):
    """t is a 2-D float tensor, of `batch` rows on `device` where they are given."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor or None, got {type(t).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D [B, n], got shape {tuple(t.shape)}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {t.dtype}")
    if batch is None:
        return
    if t.shape[0] != batch:
        raise ValueError(f"{name} has batch size {t.shape[0]}, expected {batch} like the others")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device}, the other inputs on {device}")


def _int_list(name, values) -> list[int]:
    """values as a list of Python ints; a float or a lone number is an error, not truncated."""
    hint = f"{name} must be a sequence of ints such as [10] or (10, 5)"
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{hint}, got {type(values).__name__} {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise TypeError(f"{hint}, got {values!r}")
        out.append(operator.index(v))
    return out


def _validate(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, cat_sizes, reduction,
              cat_weight, cont_weight):
    """Check the arguments of info_nll; return cat_sizes as a list of ints."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    for name, w in (("cat_weight", cat_weight), ("cont_weight", cont_weight)):
        check_number(name, w, hint="; to weight the codes by tensors, combine the entries of info_nll_per_code")
    if (cat_logits is None) != (cat_codes is None):
        raise ValueError("cat_logits and cat_codes go together: give both or neither")
    if (cont_mean is None) != (cont_codes is None):
        raise ValueError("cont_mean and cont_codes go together: give both or neither")
    if cont_log_std is not None and cont_mean is None:
        raise ValueError("cont_log_std was given without cont_mean and cont_codes")
    if cat_logits is None and cont_mean is None:
        raise ValueError("give at least one of (cat_logits, cat_codes), (cont_mean, cont_codes)")
    ref_name, ref = ("cat_logits", cat_logits) if cat_logits is not None else ("cont_mean", cont_mean)
    _check_2d_float(ref_name, ref)
    batch, device = ref.shape[0], ref.device
    if batch == 0:
        raise ValueError("the batch is empty (B = 0): the NLL of no samples is undefined")
    if cat_logits is None:
        if cat_sizes:
            raise ValueError("cat_sizes was given without cat_logits and cat_codes")
        cat_sizes = []
    else:
        cat_sizes = [cat_logits.shape[1]] if cat_sizes is None else _int_list("cat_sizes", cat_sizes)
        if not cat_sizes or min(cat_sizes) < 1 or sum(cat_sizes) != cat_logits.shape[1]:
            raise ValueError(
                f"cat_sizes {cat_sizes} must be positive and sum to cat_logits.shape[1] = "
                f"{cat_logits.shape[1]}"
            )
        if not isinstance(cat_codes, torch.Tensor):
            raise TypeError(f"cat_codes must be a tensor of class indices, got {type(cat_codes).__name__}")
        if cat_codes.dtype not in INDEX_DTYPES:
            raise TypeError(f"cat_codes must be int64 (or int32) class indices, got {cat_codes.dtype}")
        if tuple(cat_codes.shape) != (batch, len(cat_sizes)):
            raise ValueError(
                f"cat_codes must be [B, n_cat] = [{batch}, {len(cat_sizes)}], "
                f"got {tuple(cat_codes.shape)}"
            )
        if cat_codes.device != device:
            raise ValueError(f"cat_codes is on {cat_codes.device}, the other inputs on {device}")
        # A value check on a GPU would sync with the host; there the kernel gives NaN instead.
        # A traced call, or one under a dispatch mode (fake tensors), may have no values to check.
        if device.type == "cpu" and not op_must_be_seen():
            sizes = torch.tensor(cat_sizes)
            bad = (cat_codes < 0) | (cat_codes >= sizes)
            if bad.any():
                b, i = bad.nonzero()[0].tolist()
                raise ValueError(
                    f"cat_codes[{b}, {i}] = {int(cat_codes[b, i])} is out of range for a code "
                    f"of {cat_sizes[i]} categories (accepted: 0..{cat_sizes[i] - 1})"
                )
    if cont_mean is not None:
        _check_2d_float("cont_mean", cont_mean, batch, device)
        for name, t in (("cont_codes", cont_codes), ("cont_log_std", cont_log_std)):
            if t is None:
                continue
            _check_2d_float(name, t, batch, device)
            if t.shape != cont_mean.shape:
                raise ValueError(
                    f"{name} must have cont_mean's shape {tuple(cont_mean.shape)}, got {tuple(t.shape)}"
                )
    return cat_sizes


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
    """:func:`info_nll` and :func:`info_nll_per_code` from one pass (one launch on a GPU)."""
    cat_sizes = _validate(
        cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, cat_sizes, reduction,
        cat_weight, cont_weight,
    )
    ref = cat_logits if cat_logits is not None else cont_mean
    if use_triton(ref) and within_index_limit(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std):
        loss, per_code, _ = _kernel.info_nll(
            cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std,
            cat_sizes, float(cat_weight), float(cont_weight), reduction,
        )
        return loss, per_code
    return reference.info_nll_and_per_code(
        cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std,
        cat_sizes=cat_sizes, cat_weight=cat_weight, cont_weight=cont_weight, reduction=reduction,
    )


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
    """Negative log-likelihood of the latent codes under Q, InfoGAN's -L_I up to H(c).

    Per sample: cat_weight * sum_i CE(logits slice i, code i)
              + cont_weight * sum_j [log(2 pi)/2 + log sigma_j + (c_j - mu_j)^2 / (2 sigma_j^2)].

    On a GPU fused Triton kernels compute it and its gradients; inputs of 2^31 elements or more
    (a [B, K] logits tensor with B * K >= 2^31) take the PyTorch reference, as the kernels
    index in 32 bits.

    Args:
        cat_logits: [B, sum(cat_sizes)] float, or None when there is no categorical code.
        cat_codes: [B, len(cat_sizes)] int64, the sampled categories, or None.
        cont_mean: [B, n_cont] float, or None when there is no continuous code.
        cont_codes: [B, n_cont] float, the sampled continuous codes, or None. Codes that carry a
            gradient (an encoder's reparameterised sample) get theirs.
        cont_log_std: [B, n_cont] float log sigma; None means unit variance.
        cat_sizes: categories per code; None means one code of size cat_logits.shape[1].
        cat_weight, cont_weight: the lambdas of the two kinds of code; Python numbers, which
            torch.compile makes constants of its graph (a λ that changes every step goes
            outside: ``lam * info_nll(...)``).
        reduction: "mean" over the batch, "sum", or "none" for [B].

    Returns:
        A 0-dim tensor, or [B] for reduction="none"; float32 (float64 for float64 inputs).

    Raises:
        ValueError / TypeError: shapes, dtypes or devices that do not fit, an empty batch, or
        (CPU tensors) codes out of range. On a GPU an out-of-range code gives NaN for its row,
        since checking it would stall on a device sync.
    """
    return info_nll_and_per_code(
        cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std,
        cat_sizes=cat_sizes, cat_weight=cat_weight, cont_weight=cont_weight, reduction=reduction,
    )[0]


def info_nll_per_code(
    cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std=None, *, cat_sizes=None
):
    """Batch-mean NLL of each code, [len(cat_sizes) + n_cont], categorical codes first.

    Same arguments as :func:`info_nll`, without weights. L_I of code i is H(c_i) - NLL_i."""
    return info_nll_and_per_code(
        cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, cat_sizes=cat_sizes
    )[1]


def mutual_info_lower_bound(per_code_nll: torch.Tensor, entropy: torch.Tensor) -> torch.Tensor:
    """L_I = H(c) - NLL per code: the variational lower bound on I(c; G(z, c))."""
    return entropy.to(per_code_nll) - per_code_nll


def categorical_information(cat_logits: torch.Tensor, cat_sizes) -> torch.Tensor:
    """Per categorical code, the mutual information between a batch's images and the code Q
    gives them: H(mean_x q(c|x)) - mean_x H(q(c|x)) in nats, at most ln K. PyTorch operations
    (no host sync: it runs inside a captured step).

    Args:
        cat_logits: [B, sum K] Q's logits on a batch (real images, where no code is known).
        cat_sizes: categories per code, summing to cat_logits' width.

    Returns:
        [n_cat] float32 (float64 for float64 logits), differentiable in cat_logits.
    """
    out = []
    # float32 at least: half-precision logits from autocast; float64 kept (gradcheck)
    logits_acc = cat_logits.to(torch.promote_types(cat_logits.dtype, torch.float32))
    for logits in logits_acc.split(list(cat_sizes), dim=1):
        log_q = torch.log_softmax(logits, dim=1)
        q = log_q.exp()
        mean_q = q.mean(0)
        marginal_entropy = -(mean_q * torch.log(mean_q.clamp_min(torch.finfo(mean_q.dtype).tiny))).sum()
        out.append(marginal_entropy + (q * log_q).sum(1).mean())
    return torch.stack(out)
