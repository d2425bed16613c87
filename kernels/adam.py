"""Adam's update for a parameter list in one launch, writing each parameter's bf16 copy with it.

    g <- g + weight_decay * p                 (with weight decay)
    m <- beta1 * m + (1 - beta1) * g;  v <- beta2 * v + (1 - beta2) * g^2
    p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    copy <- bf16(p)                           (with copies)

torch.optim.Adam(fused=True)'s step, with t read from each parameter's step tensor on the
device (no host sync: safe inside CUDA-graph capture). With bf16 copies that the forward passes
use, autocast casts no weight and the weight gradients stay bf16 until here: the step reads the
bf16 gradient and writes the copy in the pass that updates the fp32 parameter.
"""

import math

import torch
import triton
import triton.language as tl
from fastinfo.kernels.convert import to_bf16
from fastinfo.kernels.entry import on_inputs_device
from fastinfo.kernels.multi_tensor import block_offsets, launches, pick


@triton.jit
def _adam_kernel(p_ptrs, g_ptrs, m_ptrs, v_ptrs, t_ptrs, c_ptrs, lr, beta1, beta2, log2_beta1, log2_beta2, eps,
                 weight_decay, NUMELS: tl.constexpr, STARTS: tl.constexpr, HAS_WEIGHT_DECAY: tl.constexpr,
                 HAS_COPY: tl.constexpr, BLOCK: tl.constexpr):
    """One program updates one block of one tensor."""
    pid = tl.program_id(0)
    offs, start = block_offsets(pid, STARTS, BLOCK)
    numel = pick(NUMELS, pid, STARTS)
    ptrs = (pick(p_ptrs, pid, STARTS), pick(g_ptrs, pid, STARTS), pick(m_ptrs, pid, STARTS),
            pick(v_ptrs, pid, STARTS), pick(c_ptrs, pid, STARTS))
    t = tl.load(pick(t_ptrs, pid, STARTS)).to(tl.float32)
    step_size = lr / (1 - tl.exp2(t * log2_beta1))
    bias_correction2_sqrt = tl.sqrt(1 - tl.exp2(t * log2_beta2))
    # unmasked whole blocks, as in rmsprop.py: a mask keeps every access to 4 bytes
    if start + BLOCK <= numel:
        _update(ptrs, offs, None, step_size, bias_correction2_sqrt, beta1, beta2, eps, weight_decay,
                HAS_WEIGHT_DECAY, HAS_COPY)
    else:
        _update(ptrs, offs, offs < numel, step_size, bias_correction2_sqrt, beta1, beta2, eps, weight_decay,
                HAS_WEIGHT_DECAY, HAS_COPY)


@triton.jit
def _update(ptrs, offs, mask, step_size, bias_correction2_sqrt, beta1, beta2, eps, weight_decay,
            HAS_WEIGHT_DECAY: tl.constexpr, HAS_COPY: tl.constexpr):
    p_ptr, g_ptr, m_ptr, v_ptr, c_ptr = ptrs
    p = tl.load(p_ptr + offs, mask=mask).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=mask).to(tl.float32)
    m = tl.load(m_ptr + offs, mask=mask).to(tl.float32)
    v = tl.load(v_ptr + offs, mask=mask).to(tl.float32)
    if HAS_WEIGHT_DECAY:
        g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * (g * g)
    p = p - step_size * (m / (tl.sqrt(v) / bias_correction2_sqrt + eps))
    p = p.to(p_ptr.dtype.element_ty)
    tl.store(p_ptr + offs, p, mask=mask)
    tl.store(m_ptr + offs, m.to(m_ptr.dtype.element_ty), mask=mask)
    tl.store(v_ptr + offs, v.to(v_ptr.dtype.element_ty), mask=mask)
    if HAS_COPY:
        tl.store(c_ptr + offs, to_bf16(p.to(tl.float32)), mask=mask)


@torch.library.custom_op("fastinfo::adam_", mutates_args=("params", "exp_avgs", "exp_avg_sqs", "copies"))
@on_inputs_device
def adam_(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avgs: list[torch.Tensor],
          exp_avg_sqs: list[torch.Tensor], steps: list[torch.Tensor], copies: list[torch.Tensor], lr: float,
          beta1: float, beta2: float, eps: float, weight_decay: float, block: int = 0) -> None:
    """The update above for each parameter, in place, t being its step tensor's value (the
    caller advances the steps first, as torch's Adam does). copies: empty, or a bf16 tensor a
    parameter that gets bf16(p) after the update; the gradients are then the copies' (bf16). A
    parameter and its moments share a dtype; all of a parameter's tensors share shape and
    strides and are dense. block: elements per program; 0 picks one for the device. One launch
    per dtype pair and per MAX_TENSORS tensors."""
    log2_beta1, log2_beta2 = (math.log2(b) if b > 0 else -math.inf for b in (beta1, beta2))
    block, groups = launches((params, grads, exp_avgs, exp_avg_sqs, steps, *([copies] if copies else [])), block)
    for (p, g, m, v, t, *c), numels, starts in groups:
        _adam_kernel[(starts[-1],)](
            p, g, m, v, t, c[0] if c else p, lr, beta1, beta2, log2_beta1, log2_beta2, eps, weight_decay,
            NUMELS=numels, STARTS=starts, HAS_WEIGHT_DECAY=weight_decay != 0, HAS_COPY=bool(c), BLOCK=block,
            num_warps=8,
        )


@adam_.register_fake
def _(params, grads, exp_avgs, exp_avg_sqs, steps, copies, lr, beta1, beta2, eps, weight_decay, block=0):
    return None
