"""RMSprop's update, with WGAN's weight clipping after it, for a parameter list in one launch.

    v <- alpha * v + (1 - alpha) * g^2        (g + weight_decay * p with weight decay)
    p <- p - lr * g / (sqrt(v) + eps)
    p <- clamp(p, -c, c)                      (with a clip value)
    copy <- bf16(p)                           (with copies)

torch.optim.RMSprop's multi-tensor path makes five passes over memory and a weight clip one more:
60 bytes a fp32 parameter, against 20 here (p, g, v read; p, v written), in one launch instead
of six or seven.
"""

import torch
import triton
import triton.language as tl
from fastinfo.kernels.clip import DTYPE_CODES, clamp, clip_in_each_dtype
from fastinfo.kernels.convert import to_bf16
from fastinfo.kernels.entry import on_inputs_device
from fastinfo.kernels.multi_tensor import block_offsets, launches, pick


@triton.jit
def _rmsprop_kernel(p_ptrs, g_ptrs, v_ptrs, c_ptrs, lr, alpha, eps, weight_decay, clip,
                    NUMELS: tl.constexpr, STARTS: tl.constexpr, HAS_WEIGHT_DECAY: tl.constexpr,
                    HAS_CLIP: tl.constexpr, HAS_COPY: tl.constexpr, BLOCK: tl.constexpr):
    """One program updates one block of one tensor. (Triton's launcher binds its own local named
    `params`: no argument may take that name.)"""
    pid = tl.program_id(0)
    offs, start = block_offsets(pid, STARTS, BLOCK)
    numel = pick(NUMELS, pid, STARTS)
    p_ptr, g_ptr, v_ptr = pick(p_ptrs, pid, STARTS), pick(g_ptrs, pid, STARTS), pick(v_ptrs, pid, STARTS)
    c_ptr = pick(c_ptrs, pid, STARTS) if HAS_COPY else p_ptr
    # no mask on whole blocks: a mask against a size the compiler cannot prove a multiple of
    # the vector width keeps every load and store to 4 bytes
    if start + BLOCK <= numel:
        _update(p_ptr, g_ptr, v_ptr, c_ptr, offs, None, lr, alpha, eps, weight_decay, clip, HAS_WEIGHT_DECAY,
                HAS_CLIP, HAS_COPY)
    else:
        _update(p_ptr, g_ptr, v_ptr, c_ptr, offs, offs < numel, lr, alpha, eps, weight_decay, clip, HAS_WEIGHT_DECAY,
                HAS_CLIP, HAS_COPY)


@triton.jit
def _update(p_ptr, g_ptr, v_ptr, c_ptr, offs, mask, lr, alpha, eps, weight_decay, clip,
            HAS_WEIGHT_DECAY: tl.constexpr, HAS_CLIP: tl.constexpr, HAS_COPY: tl.constexpr):
    p = tl.load(p_ptr + offs, mask=mask).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=mask).to(tl.float32)
    v = tl.load(v_ptr + offs, mask=mask).to(tl.float32)
    if HAS_WEIGHT_DECAY:
        g = g + weight_decay * p
    v = alpha * v + (1 - alpha) * (g * g)
    p = p - lr * (g / (tl.sqrt(v) + eps))
    if HAS_CLIP:
        p = clamp(p, clip)
    p = p.to(p_ptr.dtype.element_ty)
    tl.store(p_ptr + offs, p, mask=mask)
    tl.store(v_ptr + offs, v.to(v_ptr.dtype.element_ty), mask=mask)
    if HAS_COPY:
        tl.store(c_ptr + offs, to_bf16(p.to(tl.float32)), mask=mask)


@torch.library.custom_op("fastinfo::rmsprop_", mutates_args=("params", "square_avgs", "copies"))
@on_inputs_device
def rmsprop_(params: list[torch.Tensor], grads: list[torch.Tensor], square_avgs: list[torch.Tensor],
             copies: list[torch.Tensor], lr: float, alpha: float, eps: float, weight_decay: float, clip_value: float,
             block: int = 0) -> None:
    """The update above for each (p, g, v), in place; clip_value 0 means no clipping. copies:
    empty, or a bf16 tensor a parameter that gets bf16(p) after the update; the gradients are
    then the copies' (bf16). p and v share a dtype; all of a parameter's tensors share shape and
    strides and are dense. block: elements per program; 0 picks one for the device. One launch
    per dtype and per MAX_TENSORS tensors."""
    block, groups = launches((params, grads, square_avgs, *([copies] if copies else [])), block)
    for (p, g, v, *c), numels, starts in groups:
        clip = clip_in_each_dtype(clip_value)[DTYPE_CODES[p[0].dtype]] if clip_value else 0.0
        _rmsprop_kernel[(starts[-1],)](
            p, g, v, c[0] if c else p, lr, alpha, eps, weight_decay, clip, NUMELS=numels, STARTS=starts,
            HAS_WEIGHT_DECAY=weight_decay != 0, HAS_CLIP=clip_value > 0, HAS_COPY=bool(c), BLOCK=block, num_warps=8,
        )


@rmsprop_.register_fake
def _(params, grads, square_avgs, copies, lr, alpha, eps, weight_decay, clip_value, block=0):
    return None
