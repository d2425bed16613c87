"""Fused InfoGAN Q negative log-likelihood: every categorical and Gaussian code in one launch.

Forward, per row b:
    nll[b, i]      = logsumexp(logits[b, slice_i]) - logits[b, off_i + code[b, i]]
    nll[b, n + j]  = log(2 pi) / 2 + s[b, j] + (c[b, j] - mu[b, j])^2 exp(-2 s[b, j]) / 2
    loss[b]        = cat_weight * sum_i nll[b, i] + cont_weight * sum_j nll[b, n + j]
Backward, with w the upstream weight of a term:
    dlogits = w (softmax - onehot),  dmu = w (mu - c) exp(-2 s),  ds = w (1 - (c - mu)^2 exp(-2 s))

Only the per-row log-sum-exp of each categorical code is saved for the backward, as a shift
and a log-sum (see kernels/numerics.py). Non-finite logits give what F.cross_entropy gives: NaN
for a row holding a NaN or a +inf logit or only -inf ones, +inf for a -inf target logit.
An out-of-range code yields NaN for its row (a host-side check would need a device sync).
The codes' column offsets are compile-time constants: a kernel is built per layout of codes,
and no load of the layout stands between a program's start and its logits loads.
"""

import functools
import itertools
import math
from typing import NamedTuple

import torch
import triton
import triton.language as tl
from fastinfo.kernels.convert import store_narrowed
from fastinfo.kernels.entry import differentiable_entry, eager_entry, on_inputs_device
from fastinfo.kernels.numerics import INF, acc_dtype, lse_shift, rescale, tl_dtype

HALF_LOG_2PI = tl.constexpr(0.5 * math.log(2 * math.pi))
# NaN is made in the kernel as INF - INF: Triton checks at each launch that the globals a kernel
# read are unchanged, and a NaN global compares unequal to itself (Triton 3.8 then refuses to launch)
# Tiles are sized to about 8 fp32 values a thread: the sm_90 build of a 4096-logit tile at 4 warps
# (32 a thread) used 255 registers and spilled to the stack, and ran slower at B = 64 than compiled
# PyTorch on an H200 (bench/RESULTS.md has the timings).
VALUES_PER_THREAD = 8
MAX_WARPS = 16
# Programs launched per SM at most (bench/test_info_nll.py times other choices).
PROGRAMS_PER_SM = 4
# Partial sums of programs added at once by the launch that sums them.
MAX_SUM_BLOCK = 1024
# Widest categorical chunk read at once; wider codes loop over chunks with an online log-sum-exp.
MAX_BLOCK_K = 1024


@triton.jit
def _cat_code_nll(
    logits_ptr, stride_lb, stride_lk, codes_ptr, stride_cb, stride_cn, rows, row_mask,
    i, start, size, ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """NLL [BLOCK_B] of categorical code i for a block of rows, with the row's log-sum-exp as
    (shift, log of the shifted sum) [BLOCK_B] each, for the backward's softmax."""
    code = tl.load(codes_ptr + rows * stride_cb + i * stride_cn, mask=row_mask, other=0)
    valid = (code >= 0) & (code < size)
    # the target logit read on its own (the row's chunks are in cache): fewer registers than
    # picking it out of every chunk
    target = tl.load(logits_ptr + rows * stride_lb + (start + code) * stride_lk, mask=row_mask & valid,
                     other=0.0).to(ACC)
    m = tl.full([BLOCK_B], -INF, ACC)
    s = tl.zeros([BLOCK_B], ACC)
    for k0 in range(0, size, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)
        mask = row_mask[:, None] & (cols < size)[None, :]
        ptrs = logits_ptr + rows[:, None] * stride_lb + (start + cols)[None, :] * stride_lk
        # -inf goes in after the cast, as the reference reads no masked lane at all
        x = tl.where(mask, tl.load(ptrs, mask=mask, other=0.0).to(ACC), -INF)
        m_new = tl.maximum(m, tl.max(x, axis=1))
        s = rescale(s, m, m_new) + tl.sum(tl.exp(x - lse_shift(m_new)[:, None]), axis=1)
        m = m_new
    shift = lse_shift(m)
    # the NLL relative to the row's maximum: lse - target would cancel (|logits| ~ 1e4 lost 5e-4
    # in fp32, two logits of 1e30 gave 0 for ln 2)
    nll = tl.log(s) + (shift - target)
    # as log_softmax: a row whose maximum is infinite (a +inf logit, or every logit -inf) is NaN,
    # and so is a row with an out-of-range code
    finite = shift == m
    log_sum = tl.where(finite, tl.log(s), INF - INF)
    valid = valid & finite
    return tl.where(valid, nll, INF - INF), shift, log_sum


@triton.jit
def _info_nll_fwd_kernel(
    logits_ptr, stride_lb, stride_lk, codes_ptr, stride_cb, stride_cn,
    mean_ptr, stride_mb, stride_mn, cc_ptr, stride_ccb, stride_ccn, ls_ptr, stride_sb, stride_sn,
    loss_ptr, code_sum_ptr, lse_ptr,
    B, cat_weight: tl.float64, cont_weight: tl.float64, scale: tl.float64,
    OFFSETS: tl.constexpr, N_CAT: tl.constexpr, N_CONT: tl.constexpr, HAS_LOG_STD: tl.constexpr,
    PER_ROW: tl.constexpr, ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr,
    BLOCK_NC: tl.constexpr,
):
    pid = tl.program_id(0)
    n_prog = tl.num_programs(0)
    # The float arguments are declared float64 (as in the backward) and taken into the
    # accumulation dtype here: Triton types a Python float argument float32, which would round a
    # float64 loss's weights and 1/B (errors of ~1e-8). The CPU interpreter passes Python floats;
    # tl.full takes either.
    cat_weight, cont_weight = tl.full([], cat_weight, ACC), tl.full([], cont_weight, ACC)
    scale = tl.full([], scale, ACC)
    # Every row's NLLs live in one [BLOCK_B, BLOCK_NC] tile, a column per code (categorical codes
    # first), summed over the rows once at the end: the batch-mean loss is the weighted sum of the
    # per-code sums, so a whole launch has one cross-warp reduction, not one per code and block.
    code_idx = tl.arange(0, BLOCK_NC)
    cont_col = tl.where(code_idx >= N_CAT, code_idx - N_CAT, 0)
    is_cont = (code_idx >= N_CAT) & (code_idx < N_CAT + N_CONT)
    weight = tl.where(code_idx < N_CAT, cat_weight, cont_weight)
    acc = tl.zeros([BLOCK_B, BLOCK_NC], ACC)
    # Persistent loop: few programs each walk many row blocks, so small batches take one program
    # and the reduction over the batch needs no second launch.
    for blk in range(pid, tl.cdiv(B, BLOCK_B), n_prog):
        rows = blk * BLOCK_B + tl.arange(0, BLOCK_B)
        row_mask = rows < B
        nll = tl.zeros([BLOCK_B, BLOCK_NC], ACC)
        for i in tl.static_range(N_CAT):
            nll_i, shift, log_sum = _cat_code_nll(
                logits_ptr, stride_lb, stride_lk, codes_ptr, stride_cb, stride_cn, rows,
                row_mask, i, OFFSETS[i], OFFSETS[i + 1] - OFFSETS[i], ACC, BLOCK_B, BLOCK_K,
            )
            tl.store(lse_ptr + rows * N_CAT + i, shift, mask=row_mask)
            tl.store(lse_ptr + (B + rows) * N_CAT + i, log_sum, mask=row_mask)
            nll += tl.where(code_idx[None, :] == i, nll_i[:, None], 0.0)
        if N_CONT > 0:
            mask = row_mask[:, None] & is_cont[None, :]
            mu = tl.load(mean_ptr + rows[:, None] * stride_mb + cont_col[None, :] * stride_mn,
                         mask=mask, other=0.0).to(ACC)
            c = tl.load(cc_ptr + rows[:, None] * stride_ccb + cont_col[None, :] * stride_ccn,
                        mask=mask, other=0.0).to(ACC)
            if HAS_LOG_STD:
                ls = tl.load(ls_ptr + rows[:, None] * stride_sb + cont_col[None, :] * stride_sn,
                             mask=mask, other=0.0).to(ACC)
                z = (c - mu) * tl.exp(-ls)
                nll += tl.where(mask, HALF_LOG_2PI + ls + 0.5 * z * z, 0.0)
            else:
                nll += tl.where(mask, HALF_LOG_2PI + 0.5 * (c - mu) * (c - mu), 0.0)
        nll = tl.where(row_mask[:, None], nll, 0.0)
        if PER_ROW:
            tl.store(loss_ptr + rows, tl.sum(nll * weight[None, :], axis=1), mask=row_mask)
        acc += nll
    code_sums = tl.sum(acc, axis=0)
    if not PER_ROW:
        tl.store(loss_ptr + pid, tl.sum(code_sums * weight, axis=0) * scale)
    tl.store(code_sum_ptr + pid * (N_CAT + N_CONT) + code_idx, code_sums / B,
             mask=code_idx < N_CAT + N_CONT)


@triton.jit
def _info_nll_bwd_kernel(
    logits_ptr, stride_lb, stride_lk, codes_ptr, stride_cb, stride_cn,
    mean_ptr, stride_mb, stride_mn, cc_ptr, stride_ccb, stride_ccn, ls_ptr, stride_sb, stride_sn,
    lse_ptr, gloss_ptr, gcode_ptr, dlogits_ptr, dmean_ptr, dcc_ptr, dls_ptr,
    B, cat_weight: tl.float64, cont_weight: tl.float64, scale: tl.float64,
    OFFSETS: tl.constexpr, N_CAT: tl.constexpr, N_CONT: tl.constexpr, HAS_LOG_STD: tl.constexpr,
    PER_ROW: tl.constexpr, HAS_GLOSS: tl.constexpr, HAS_GCODE: tl.constexpr, HAS_DCODES: tl.constexpr,
    ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
):
    pid = tl.program_id(0)
    n_prog = tl.num_programs(0)
    cat_weight, cont_weight = tl.full([], cat_weight, ACC), tl.full([], cont_weight, ACC)
    scale = tl.full([], scale, ACC)
    for blk in range(pid, tl.cdiv(B, BLOCK_B), n_prog):
        rows = blk * BLOCK_B + tl.arange(0, BLOCK_B)
        row_mask = rows < B
        g = tl.zeros([BLOCK_B], ACC)
        if HAS_GLOSS:
            if PER_ROW:
                g = tl.load(gloss_ptr + rows, mask=row_mask, other=0.0).to(ACC)
            else:
                g += tl.load(gloss_ptr).to(ACC) * scale
        for i in tl.static_range(N_CAT):
            w = g * cat_weight
            if HAS_GCODE:
                w += tl.load(gcode_ptr + i).to(ACC) / B
            start = OFFSETS[i]
            size = OFFSETS[i + 1] - OFFSETS[i]
            code = tl.load(codes_ptr + rows * stride_cb + i * stride_cn, mask=row_mask, other=0)
            shift = tl.load(lse_ptr + rows * N_CAT + i, mask=row_mask, other=0.0)
            log_sum = tl.load(lse_ptr + (B + rows) * N_CAT + i, mask=row_mask, other=0.0)
            for k0 in range(0, size, BLOCK_K):
                cols = k0 + tl.arange(0, BLOCK_K)
                mask = row_mask[:, None] & (cols < size)[None, :]
                x = tl.load(logits_ptr + rows[:, None] * stride_lb
                            + (start + cols)[None, :] * stride_lk, mask=mask, other=0.0).to(ACC)
                onehot = tl.where(cols[None, :] == code[:, None], 1.0, 0.0)
                # (x - shift) - log_sum: the shift cancels exactly where x is near the maximum
                softmax = tl.where(mask, tl.exp((x - shift[:, None]) - log_sum[:, None]), 0.0)
                d = w[:, None] * (softmax - onehot)
                # gradients are written contiguous [B, sum K]
                store_narrowed(dlogits_ptr + rows[:, None] * OFFSETS[N_CAT] + (start + cols)[None, :],
                               d, mask)
        if N_CONT > 0:
            cols = tl.arange(0, BLOCK_C)
            mask = row_mask[:, None] & (cols < N_CONT)[None, :]
            w = g[:, None] * cont_weight + tl.zeros([BLOCK_B, BLOCK_C], ACC)
            if HAS_GCODE:
                gc = tl.load(gcode_ptr + N_CAT + cols, mask=cols < N_CONT, other=0.0).to(ACC)
                w += gc[None, :] / B
            mu = tl.load(mean_ptr + rows[:, None] * stride_mb + cols[None, :] * stride_mn,
                         mask=mask, other=0.0).to(ACC)
            c = tl.load(cc_ptr + rows[:, None] * stride_ccb + cols[None, :] * stride_ccn,
                        mask=mask, other=0.0).to(ACC)
            out = rows[:, None] * N_CONT + cols[None, :]
            if HAS_LOG_STD:
                ls = tl.load(ls_ptr + rows[:, None] * stride_sb + cols[None, :] * stride_sn,
                             mask=mask, other=0.0).to(ACC)
                inv_var = tl.exp(-2.0 * ls)
                d_mean = w * (mu - c) * inv_var
                store_narrowed(dls_ptr + out, w * (1.0 - (c - mu) * (c - mu) * inv_var), mask)
            else:
                d_mean = w * (mu - c)
            store_narrowed(dmean_ptr + out, d_mean, mask)
            if HAS_DCODES:
                store_narrowed(dcc_ptr + out, -d_mean, mask)


class Tiling(NamedTuple):
    block_b: int  # rows a program takes at once
    block_k: int  # logits of one categorical code read at once
    block_c: int  # continuous codes, padded to a power of two
    block_nc: int  # all codes, padded to a power of two
    num_warps: int


@functools.lru_cache(maxsize=256)
def _tiling(cat_sizes: tuple[int, ...], n_cont: int, B: int, acc_bytes: int = 4) -> Tiling:
    """The categorical chunk covers the widest code (up to MAX_BLOCK_K); the row block is no taller
    than the batch (at InfoGAN's batch sizes a taller one only computes masked rows) and no larger
    than MAX_WARPS warps hold at VALUES_PER_THREAD; the warps are as many as the tile needs. A
    float64 value (acc_bytes = 8) counts as two, as it takes two registers."""
    block_k = min(MAX_BLOCK_K, triton.next_power_of_2(max(cat_sizes, default=1)))
    block_c = triton.next_power_of_2(max(n_cont, 1))
    block_nc = triton.next_power_of_2(max(2, len(cat_sizes) + n_cont))
    width = max(block_k, block_c, block_nc)
    values_per_row = width * acc_bytes // 4
    max_tile = MAX_WARPS * 32 * VALUES_PER_THREAD
    block_b = max(1, min(max_tile // values_per_row, triton.next_power_of_2(max(B, 1))))
    # float64 accumulation keeps more live tiles of double registers: twice the warps for it (with
    # Triton 3.6 its sm_90 build at 4 warps spilled 16 bytes a thread)
    return Tiling(block_b, block_k, block_c, block_nc, _warps_for(block_b * values_per_row * acc_bytes // 4))


def _warps_for(tile_size: int) -> int:
    """Warps that hold a tile of this many values at VALUES_PER_THREAD a thread (at most MAX_WARPS)."""
    return min(MAX_WARPS, max(1, tile_size // (32 * VALUES_PER_THREAD)))


def _n_programs(device, n_blocks):
    if device.type == "cuda":
        # a program per row block up to PROGRAMS_PER_SM per SM; past that each walks several blocks
        return max(1, min(n_blocks, PROGRAMS_PER_SM * _sm_count(device.index)))
    return 1  # the CPU interpreter runs programs one after another; one is cheapest


@functools.cache
def _sm_count(index: int | None) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def _strides(t, ndim=2):
    return (0,) * ndim if t is None else tuple(t.stride())


def _args(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, dummy):
    out = []
    for t in (cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std):
        out += [dummy if t is None else t, *_strides(t)]
    return out


@functools.lru_cache(maxsize=256)
def _offsets(cat_sizes: tuple[int, ...]) -> tuple[int, ...]:
    """Column offsets of the codes: (0, K_1, K_1 + K_2, ..., sum K)."""
    return tuple(itertools.accumulate(cat_sizes, initial=0))


def _layout(cat_logits, cont_mean, cat_sizes):
    ref = cat_logits if cat_logits is not None else cont_mean
    n_cont = 0 if cont_mean is None else cont_mean.shape[1]
    return ref, ref.shape[0], n_cont, len(cat_sizes)


@triton.jit
def _sum_partials_kernel(loss_part_ptr, code_part_ptr, loss_ptr, per_code_ptr, n_prog,
                         NC: tl.constexpr, SUM_LOSS: tl.constexpr, BLOCK_P: tl.constexpr,
                         BLOCK_NC: tl.constexpr):
    """The batch sums from the forward programs' partial sums, in one launch for the loss and
    every code, always added in the same order (no run-to-run variation)."""
    cols = tl.arange(0, BLOCK_NC)
    code_acc = tl.zeros([BLOCK_P, BLOCK_NC], code_part_ptr.dtype.element_ty)
    loss_acc = tl.zeros([BLOCK_P], code_part_ptr.dtype.element_ty)
    for p0 in range(0, n_prog, BLOCK_P):
        progs = p0 + tl.arange(0, BLOCK_P)
        mask = (progs < n_prog)[:, None] & (cols < NC)[None, :]
        code_acc += tl.load(code_part_ptr + progs[:, None] * NC + cols[None, :], mask=mask, other=0.0)
        if SUM_LOSS:
            loss_acc += tl.load(loss_part_ptr + progs, mask=progs < n_prog, other=0.0)
    tl.store(per_code_ptr + cols, tl.sum(code_acc, axis=0), mask=cols < NC)
    if SUM_LOSS:
        tl.store(loss_ptr, tl.sum(loss_acc, axis=0))


@on_inputs_device
def _info_nll_fwd(
    cat_logits: torch.Tensor | None,
    cat_codes: torch.Tensor | None,
    cont_mean: torch.Tensor | None,
    cont_codes: torch.Tensor | None,
    cont_log_std: torch.Tensor | None,
    cat_sizes: list[int],
    cat_weight: float,
    cont_weight: float,
    reduction: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The forward launch. Inputs: cat_logits [B, sum K] and cat_codes [B, n_cat] (int), or None;
    cont_mean, cont_codes, cont_log_std [B, n_cont], or None (cont_log_std alone may be None).
    Returns (loss: [] or [B] for "none", per-code batch-mean NLL [n_codes], lse [2, B, n_cat]:
    each categorical code's log-sum-exp per row, as a shift (the row's maximum, 0 where infinite)
    and the log of the sum of exp(logit - shift), kept apart so the backward loses no precision)."""
    ref, B, n_cont, n_cat = _layout(cat_logits, cont_mean, cat_sizes)
    acc = acc_dtype(cat_logits, cont_mean, cont_codes, cont_log_std)
    sizes = tuple(cat_sizes)
    tiling = _tiling(sizes, n_cont, B, acc.itemsize)
    n_prog = _n_programs(ref.device, triton.cdiv(B, tiling.block_b))
    per_row = reduction == "none"
    loss = torch.empty(B if per_row else n_prog, device=ref.device, dtype=acc)
    code_sums = torch.empty(n_prog, n_cat + n_cont, device=ref.device, dtype=acc)
    lse = torch.empty(2, B, n_cat, device=ref.device, dtype=acc)
    _info_nll_fwd_kernel[(n_prog,)](
        *_args(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, ref),
        loss, code_sums, lse, B, cat_weight, cont_weight, 1.0 / B if reduction == "mean" else 1.0,
        OFFSETS=_offsets(sizes), N_CAT=n_cat, N_CONT=n_cont,
        HAS_LOG_STD=cont_log_std is not None, PER_ROW=per_row, ACC=tl_dtype(acc),
        BLOCK_B=tiling.block_b, BLOCK_K=tiling.block_k, BLOCK_NC=tiling.block_nc,
        num_warps=tiling.num_warps,
    )
    if n_prog == 1:
        return (loss if per_row else loss.view(())), code_sums.view(-1), lse
    total = loss if per_row else torch.empty((), device=ref.device, dtype=acc)
    per_code = torch.empty(n_cat + n_cont, device=ref.device, dtype=acc)
    block_p = min(MAX_SUM_BLOCK, triton.next_power_of_2(n_prog))
    _sum_partials_kernel[(1,)](
        loss, code_sums, total, per_code, n_prog, NC=n_cat + n_cont, SUM_LOSS=not per_row,
        BLOCK_P=block_p, BLOCK_NC=tiling.block_nc, num_warps=_warps_for(block_p * tiling.block_nc),
    )
    return total, per_code, lse


info_nll_op = torch.library.custom_op("fastinfo::info_nll_fwd", _info_nll_fwd, mutates_args=())


@info_nll_op.register_fake
def _(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, cat_sizes, cat_weight,
      cont_weight, reduction):
    ref, B, n_cont, n_cat = _layout(cat_logits, cont_mean, cat_sizes)
    acc = acc_dtype(cat_logits, cont_mean, cont_codes, cont_log_std)
    loss = ref.new_empty((B,) if reduction == "none" else (), dtype=acc)
    return loss, ref.new_empty(n_cat + n_cont, dtype=acc), ref.new_empty(2, B, n_cat, dtype=acc)


def _grad_inputs(cat_logits, cont_mean, cont_codes, cont_log_std, codes_grad):
    """The inputs that get a gradient, in the backward's order; None where one has none."""
    return cat_logits, cont_mean, cont_codes if codes_grad else None, cont_log_std


def _grad_buffers(*inputs):
    """Contiguous buffers for the gradients of _grad_inputs(*inputs), which the kernel writes."""
    return [None if t is None else torch.empty(t.shape, device=t.device, dtype=t.dtype)
            for t in _grad_inputs(*inputs)]


@on_inputs_device
def _info_nll_bwd(
    cat_logits: torch.Tensor | None,
    cat_codes: torch.Tensor | None,
    cont_mean: torch.Tensor | None,
    cont_codes: torch.Tensor | None,
    cont_log_std: torch.Tensor | None,
    lse: torch.Tensor,
    grad_loss: torch.Tensor | None,
    grad_per_code: torch.Tensor | None,
    cat_sizes: list[int],
    cat_weight: float,
    cont_weight: float,
    reduction: str,
    codes_grad: bool,
) -> list[torch.Tensor]:
    """The backward launch: the forward's inputs and lse, and the upstream gradients of the loss
    ([] or [B]) and of the per-code NLL ([n_codes]), either None when unused. Returns the
    gradients, each of its input's shape and dtype, of those of cat_logits, cont_mean,
    cont_codes (if codes_grad) and cont_log_std that were given, in that order."""
    ref, B, n_cont, n_cat = _layout(cat_logits, cont_mean, cat_sizes)
    acc = acc_dtype(cat_logits, cont_mean, cont_codes, cont_log_std)
    sizes = tuple(cat_sizes)
    tiling = _tiling(sizes, n_cont, B, acc.itemsize)
    grads = _grad_buffers(cat_logits, cont_mean, cont_codes, cont_log_std, codes_grad)
    # the gradient of .sum() arrives with stride 0: make it a real buffer for the kernel
    grad_loss = None if grad_loss is None else grad_loss.contiguous()
    grad_per_code = None if grad_per_code is None else grad_per_code.contiguous()
    _info_nll_bwd_kernel[(_n_programs(ref.device, triton.cdiv(B, tiling.block_b)),)](
        *_args(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, ref),
        lse, ref if grad_loss is None else grad_loss,
        ref if grad_per_code is None else grad_per_code,
        *(ref if g is None else g for g in grads),
        B, cat_weight, cont_weight, 1.0 / B if reduction == "mean" else 1.0,
        OFFSETS=_offsets(sizes), N_CAT=n_cat, N_CONT=n_cont,
        HAS_LOG_STD=cont_log_std is not None, PER_ROW=reduction == "none",
        HAS_GLOSS=grad_loss is not None, HAS_GCODE=grad_per_code is not None,
        HAS_DCODES=grads[2] is not None, ACC=tl_dtype(acc),
        BLOCK_B=tiling.block_b, BLOCK_K=tiling.block_k, BLOCK_C=tiling.block_c,
        num_warps=tiling.num_warps,
    )
    return [g for g in grads if g is not None]


info_nll_bwd_op = torch.library.custom_op("fastinfo::info_nll_bwd", _info_nll_bwd, mutates_args=())


@info_nll_bwd_op.register_fake
def _(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, lse, grad_loss, grad_per_code,
      cat_sizes, cat_weight, cont_weight, reduction, codes_grad):
    return [g for g in _grad_buffers(cat_logits, cont_mean, cont_codes, cont_log_std, codes_grad) if g is not None]


info_nll_bwd = eager_entry(info_nll_bwd_op, _info_nll_bwd)


def _setup_context(ctx, inputs, output):
    cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, *rest = inputs
    ctx.save_for_backward(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, output[2])
    ctx.rest = rest
    # an output the loss does not use (per_code when logged only, always lse) gets None, not a
    # zero-filled tensor: no extra kernels, and the backward kernel skips its term
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_loss, grad_per_code, _grad_lse):
    if grad_loss is None and grad_per_code is None:
        return (None,) * 9
    cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, lse = ctx.saved_tensors
    # the codes are samples, without a gradient, unless a caller's codes carry one (an encoder's
    # reparameterised sample): only then is d/dc = -d/dmu written out
    codes_grad = ctx.needs_input_grad[3]
    grads = iter(info_nll_bwd(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std, lse,
                              grad_loss, grad_per_code, *ctx.rest, codes_grad))
    d_logits, d_mean, d_codes, d_log_std = (
        None if t is None else next(grads)
        for t in _grad_inputs(cat_logits, cont_mean, cont_codes, cont_log_std, codes_grad)
    )
    return d_logits, None, d_mean, d_codes, d_log_std, None, None, None, None


# (loss, per-code NLL, lse) = info_nll(cat_logits, cat_codes, cont_mean, cont_codes, cont_log_std,
#                                     cat_sizes, cat_weight, cont_weight, reduction)
info_nll = differentiable_entry(info_nll_op, _info_nll_fwd, _setup_context, _backward)
