"""WGAN weight clipping of a whole parameter list (fused: kernels/clip.py)."""

import torch

from fastinfo.losses.backend import HAVE_TRITON, is_dense, use_triton
from fastinfo.losses.checks import KERNEL_DTYPES, check_number

if HAVE_TRITON:
    from fastinfo.kernels import clip as _kernel


def clip_weights_(params, clip_value: float) -> None:
    """Clamp every tensor in params to [-clip_value, clip_value] in place (WGAN's weight clipping).

    On a GPU this is one Triton launch for every float32 / bfloat16 / float16 tensor of the list
    whose elements fill their memory span (contiguous, channels-last or any other dense layout),
    whatever their number, shapes and dtypes, with no host sync: safe inside CUDA-graph capture.
    Other tensors (float64, views with gaps), and every tensor on the CPU, take
    ``torch._foreach_clamp_min_`` / ``_max_``.

    Args:
        params: an iterable of floating-point tensors on one device: parameters (leaves) or
            tensors that do not require grad. Or one such tensor, as
            torch.nn.utils.clip_grad_norm_ takes it (iterating it would give its rows).
        clip_value: c > 0.

    Raises:
        ValueError / TypeError: a bad clip value, a tensor that is not floating point, a device
        mix, or a non-leaf tensor that requires grad (clamping it in place would corrupt its graph).
    """
    params = [params] if isinstance(params, torch.Tensor) else list(params)
    check_number("clip_value", clip_value, 0.0, low_open=True)
    for i, p in enumerate(params):
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"params[{i}] is a {type(p).__name__}, not a tensor")
        if not p.is_floating_point():
            raise TypeError(f"params[{i}] is {p.dtype}; accepted: floating-point tensors")
        if p.device != params[0].device:
            raise ValueError(f"params[{i}] is on {p.device}, params[0] on {params[0].device}")
        if p.requires_grad and not p.is_leaf:
            raise ValueError(f"params[{i}] is a non-leaf tensor that requires grad; clip parameters (leaves)")
    if not params:
        return
    fused = use_triton(params[0])
    takes = [fused and p.dtype in KERNEL_DTYPES and is_dense(p) for p in params]
    on_kernel = [p for p, k in zip(params, takes) if k]
    rest = [p for p, k in zip(params, takes) if not k]
    with torch.no_grad():
        if on_kernel:
            _kernel.clip_weights_(on_kernel, float(clip_value))
        if rest:
            torch._foreach_clamp_min_(rest, -clip_value)
            torch._foreach_clamp_max_(rest, clip_value)
