"""RMSprop's update, with WGAN's weight clipping after it, for a parameter list in one launch.

    v <- alpha * v + (1 - alpha) * g^2        (g + weight_decay * p with weight decay)
    p <- p - lr * g / (sqrt(v) + eps)
    p <- clamp(p, -c, c)                      (with a clip value)

torch.optim.RMSprop's multi-tensor path makes five passes over memory and a weight clip one more:
60 bytes a fp32 parameter, against 20 here (p, g, v read; p, v written), in one launch instead
of six or seven. The tensors are tuple arguments, not a device table of addresses as in clip.py:
autograd gives each step's gradients new addresses, and a table would have to be rebuilt and
copied to the device, which a CUDA-graph capture cannot do. Their sizes are compile-time
constants: one build per parameter layout.
"""

import torch
import triton
import triton.language as tl
from fastinfo.kernels.clip import DTYPE_CODES, clamp, clip_in_each_dtype

# Elements per program: 4096 fp32 = 16 KB of each stream in flight. The CPU interpreter runs
# programs one after another, so there a few large blocks are far cheaper.
BLOCK = 4096
INTERPRETER_BLOCK = 1 << 20
# Tensors per launch: each adds three pointer arguments and three selects to every program
MAX_TENSORS = 64


@triton.jit
def _rmsprop_kernel(p_ptrs, g_ptrs, v_ptrs, lr, alpha, eps, weight_decay, clip,
                    NUMELS: tl.constexpr, STARTS: tl.constexpr, HAS_WEIGHT_DECAY: tl.constexpr,
                    HAS_CLIP: tl.constexpr, BLOCK: tl.constexpr):
    """One program updates one block of one tensor; STARTS[i] is tensor i's first block. (Triton's
    launcher binds its own local named `params`: no argument may take that name.)"""
    pid = tl.program_id(0)
    p_ptr, g_ptr, v_ptr = p_ptrs[0], g_ptrs[0], v_ptrs[0]
    first, numel = 0, NUMELS[0]
    for i in tl.static_range(1, len(NUMELS)):
        later = pid >= STARTS[i]
        p_ptr = tl.where(later, p_ptrs[i], p_ptr)
        g_ptr = tl.where(later, g_ptrs[i], g_ptr)
        v_ptr = tl.where(later, v_ptrs[i], v_ptr)
        first = tl.where(later, STARTS[i], first)
        numel = tl.where(later, NUMELS[i], numel)
    # 64-bit offsets: a tensor may hold more than 2^31 elements
    start = (pid - first).to(tl.int64) * BLOCK
    offs = start + tl.arange(0, BLOCK)
    # no mask on whole blocks: a mask against a size the compiler cannot prove a multiple of
    # the vector width keeps every load and store to 4 bytes
    if start + BLOCK <= numel:
        _update(p_ptr, g_ptr, v_ptr, offs, None, lr, alpha, eps, weight_decay, clip, HAS_WEIGHT_DECAY, HAS_CLIP)
    else:
        _update(p_ptr, g_ptr, v_ptr, offs, offs < numel, lr, alpha, eps, weight_decay, clip, HAS_WEIGHT_DECAY,
                HAS_CLIP)


@triton.jit
def _update(p_ptr, g_ptr, v_ptr, offs, mask, lr, alpha, eps, weight_decay, clip, HAS_WEIGHT_DECAY: tl.constexpr,
            HAS_CLIP: tl.constexpr):
    p = tl.load(p_ptr + offs, mask=mask).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=mask).to(tl.float32)
    v = tl.load(v_ptr + offs, mask=mask).to(tl.float32)
    if HAS_WEIGHT_DECAY:
        g = g + weight_decay * p
    v = alpha * v + (1 - alpha) * (g * g)
    p = p - lr * (g / (tl.sqrt(v) + eps))
    if HAS_CLIP:
        p = clamp(p, clip)
    tl.store(p_ptr + offs, p.to(p_ptr.dtype.element_ty), mask=mask)
    tl.store(v_ptr + offs, v.to(v_ptr.dtype.element_ty), mask=mask)


def _launch(params, grads, square_avgs, lr, alpha, eps, weight_decay, clip_value, block):
    """One launch over tensors that share a dtype."""
    numels = tuple(p.numel() for p in params)
    starts = [0]
    for n in numels:
        starts.append(starts[-1] + triton.cdiv(n, block))
    clip = clip_in_each_dtype(clip_value)[DTYPE_CODES[params[0].dtype]] if clip_value else 0.0
    _rmsprop_kernel[(starts[-1],)](
        tuple(params), tuple(grads), tuple(square_avgs), lr, alpha, eps, weight_decay, clip,
        NUMELS=numels, STARTS=tuple(starts), HAS_WEIGHT_DECAY=weight_decay != 0, HAS_CLIP=clip_value > 0,
        BLOCK=block, num_warps=8,
    )


@torch.library.custom_op("fastinfo::rmsprop_", mutates_args=("params", "square_avgs"))
def rmsprop_(params: list[torch.Tensor], grads: list[torch.Tensor], square_avgs: list[torch.Tensor],
             lr: float, alpha: float, eps: float, weight_decay: float, clip_value: float, block: int = 0) -> None:
    """The update above for each (p, g, v), in place; clip_value 0 means no clipping. The tensors
    of a triple share shape, strides and dtype, and are dense. block: elements per program; 0
    picks BLOCK on a GPU and INTERPRETER_BLOCK on the CPU. One launch per dtype and per
    MAX_TENSORS tensors."""
    triples = [t for t in zip(params, grads, square_avgs) if t[0].numel() > 0]
    if not triples:
        return
    block = block or (BLOCK if triples[0][0].is_cuda else INTERPRETER_BLOCK)
    for dtype in DTYPE_CODES:
        same = [t for t in triples if t[0].dtype == dtype]
        for i in range(0, len(same), MAX_TENSORS):
            _launch(*zip(*same[i:i + MAX_TENSORS]), lr, alpha, eps, weight_decay, clip_value, block)


@rmsprop_.register_fake
def _(params, grads, square_avgs, lr, alpha, eps, weight_decay, clip_value, block=0):
    return None
