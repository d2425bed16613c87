"""WGAN weight clipping of a whole parameter list (fused: kernels/clip.py)."""

import torch

from fastinfo.losses._dispatch import HAVE_TRITON, KERNEL_DTYPES, check_number, use_triton

if HAVE_TRITON:
    from fastinfo.kernels import clip as _kernel


def clip_weights_(params, clip_value: float) -> None:
    """Clamp every tensor in params to [-clip_value, clip_value] in place (WGAN's weight clipping).

    On a GPU this is one Triton launch for the whole list, whatever the number, shapes and dtypes
    of the tensors, with no host sync: safe inside CUDA-graph capture. On the CPU it is
    ``torch._foreach_clamp_min_`` / ``_max_``.

    Args:
        params: an iterable of float32 / bfloat16 / float16 tensors on one device, contiguous;
            parameters (leaves) or tensors that do not require grad. Or one such tensor, as
            torch.nn.utils.clip_grad_norm_ takes it (iterating it would give its rows).
        clip_value: c > 0.

    Raises:
        ValueError / TypeError: a bad clip value, dtype, device mix, non-contiguous tensor or a
        non-leaf tensor that requires grad (clamping it in place would corrupt its graph).
    """
    params = [params] if isinstance(params, torch.Tensor) else list(params)
    check_number("clip_value", clip_value, 0.0, low_open=True)
    for i, p in enumerate(params):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"params[{i}] is a {type(p).__name__}, not a tensor")
        if p.dtype not in KERNEL_DTYPES:
            raise TypeError(f"params[{i}] is {p.dtype}; accepted: float32, bfloat16, float16")
        if p.device != params[0].device:
            raise ValueError(f"params[{i}] is on {p.device}, params[0] on {params[0].device}")
        if not p.is_contiguous():
            raise ValueError(f"params[{i}] (shape {tuple(p.shape)}) is not contiguous; clip its .contiguous() copy")
        if p.requires_grad and not p.is_leaf:
            raise ValueError(f"params[{i}] is a non-leaf tensor that requires grad; clip parameters (leaves)")
    if not params:
        return
    with torch.no_grad():
        if use_triton(params[0]):
            _kernel.clip_weights_(params, float(clip_value))
        else:
            torch._foreach_clamp_min_(params, -clip_value)
            torch._foreach_clamp_max_(params, clip_value)
