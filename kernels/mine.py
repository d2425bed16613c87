"""Fused MINE bounds (Belghazi et al. 2018) over a batch of critic outputs.

mine_dv_bound:  bound = mean(t_joint) - log mean exp(t_marginal)   (Donsker-Varadhan)
    The moving average of E[exp T] lives in the log domain: lme = log mean exp(t_marginal);
    new_log_ema = lme when there is none yet (None or NaN), else
    logaddexp(log(1 - rate) + log_ema, log(rate) + lme). The backward uses it in place of the
    batch's own denominator: d/dt_marginal_i = -exp(t_marginal_i - new_log_ema) / B, the MINE bias
    correction; d/dt_joint_i = 1/B. The value returned is the plain DV bound.
mine_f_bound:   bound = mean(t_joint) - mean(exp(t_marginal - 1))   (MINE-f, unbiased)
mine_dv_bound_pairwise: a separable critic T(x, y) = <f(x), g(y)>; joint pairs on the diagonal,
    marginals ALL B(B-1) off-diagonal pairs; an online log-sum-exp over tiles, as in flash
    attention, so the B x B matrix never exists (O(B d) memory, forward and backward).
"""

import math

import torch
import triton
import triton.language as tl
from fastinfo.kernels.convert import store_narrowed
from fastinfo.kernels.entry import differentiable_entry, eager_entry, on_inputs_device
from fastinfo.kernels.numerics import INF, acc_dtype, logaddexp, lse_shift, rescale, tl_dtype

REDUCE_BLOCK = 1024  # scores a program reads at once
# Blocks one program walks before the batch is split over programs: past 4 blocks the combining
# launch costs less than the walk it saves, as timed on an H200 (bench/RESULTS.md).
ONE_PROGRAM_BLOCKS = 4
MAX_PROGRAMS = 1024  # the combining launch reads every program's partial sums at once
MAX_PAIRWISE_DIM = 512


# ---------------------------------------------------------------------------------------------
# DV and f bounds. A MINE batch (hundreds to a few thousand scores) is walked by one program, so
# the bound and the moving average come out of a single launch; a larger batch is split over
# programs, whose partial sums a second launch of one program combines.


@triton.jit
def _finish_bound(sum_j, m, s, bound_ptr, ema_ptr, new_ema_ptr, B, log_b, log_keep, log_rate,
                  F_DIV: tl.constexpr, HAS_EMA: tl.constexpr, ACC: tl.constexpr):
    """Store the bound (and the new log-average) from vectors of partial sums: sum_j of t_joint;
    for MINE-f, s of exp(t_marginal - 1); for DV, s of exp(t_marginal - lse_shift(m)) with m each
    lane's max. The logs arrive as float64 (see _info_nll_fwd_kernel) and are taken into the
    accumulation dtype. Non-finite scores give what the reference gives: the bound is NaN where
    the bias-corrected weight exp(lme - new_log_ema) is (an infinite lme, +inf or -inf with no
    average) or overflows, as the reference's value carries that weight's (w - w)."""
    log_b, log_keep, log_rate = tl.full([], log_b, ACC), tl.full([], log_keep, ACC), tl.full([], log_rate, ACC)
    mean_j = tl.sum(sum_j, axis=0) / B
    if F_DIV:
        tl.store(bound_ptr, mean_j - tl.sum(s, axis=0) / B)
    else:
        m_all = tl.max(m, axis=0)
        lme = lse_shift(m_all) + tl.log(tl.sum(rescale(s, m, m_all), axis=0)) - log_b
        new_ema = lme
        if HAS_EMA:
            old = tl.load(ema_ptr).to(ACC)
            mixed = logaddexp(log_keep + old, log_rate + lme)
            new_ema = tl.where(old == old, mixed, lme)  # NaN: no average yet
        weight = tl.exp(lme - new_ema)
        tl.store(bound_ptr, tl.where(weight < INF, mean_j - lme, INF - INF))
        tl.store(new_ema_ptr, new_ema)


@triton.jit
def _mine_fwd_kernel(tj_ptr, tm_ptr, ema_ptr, bound_ptr, new_ema_ptr, part_ptr, B,
                     log_b: tl.float64, log_keep: tl.float64, log_rate: tl.float64,
                     F_DIV: tl.constexpr, HAS_EMA: tl.constexpr, PARTIALS: tl.constexpr, ACC: tl.constexpr,
                     BLOCK: tl.constexpr):
    """One program: the bound. Several (PARTIALS): program p walks blocks p, p + P, ... and stores
    its sum of t_joint, max of t_marginal and sum of exp(t_marginal - max) at part_ptr + [0, P, 2P] + p."""
    pid = tl.program_id(0)
    n_prog = tl.num_programs(0)
    offs0 = tl.arange(0, BLOCK)
    sum_j = tl.zeros([BLOCK], ACC)
    m = tl.full([BLOCK], -INF, ACC)
    s = tl.zeros([BLOCK], ACC)
    for k0 in range(pid * BLOCK, B, n_prog * BLOCK):
        offs = k0 + offs0
        mask = offs < B
        sum_j += tl.load(tj_ptr + offs, mask=mask, other=0.0).to(ACC)
        x = tl.where(mask, tl.load(tm_ptr + offs, mask=mask, other=0.0).to(ACC), -INF)
        if F_DIV:
            s += tl.exp(x - 1.0)
        else:
            m_new = tl.maximum(m, x)
            s = rescale(s, m, m_new) + tl.exp(x - lse_shift(m_new))
            m = m_new
    if PARTIALS:
        m_prog = tl.max(m, axis=0)
        tl.store(part_ptr + pid, tl.sum(sum_j, axis=0))
        tl.store(part_ptr + n_prog + pid, m_prog)
        if F_DIV:
            tl.store(part_ptr + 2 * n_prog + pid, tl.sum(s, axis=0))
        else:
            tl.store(part_ptr + 2 * n_prog + pid, tl.sum(rescale(s, m, m_prog), axis=0))
    else:
        _finish_bound(sum_j, m, s, bound_ptr, ema_ptr, new_ema_ptr, B, log_b, log_keep, log_rate,
                      F_DIV, HAS_EMA, ACC)


@triton.jit
def _mine_combine_kernel(part_ptr, ema_ptr, bound_ptr, new_ema_ptr, n_prog, B,
                         log_b: tl.float64, log_keep: tl.float64, log_rate: tl.float64,
                         F_DIV: tl.constexpr, HAS_EMA: tl.constexpr, ACC: tl.constexpr, BLOCK_P: tl.constexpr):
    """The bound from the forward programs' partial sums, added in a fixed order (no run-to-run
    variation)."""
    progs = tl.arange(0, BLOCK_P)
    mask = progs < n_prog
    sum_j = tl.load(part_ptr + progs, mask=mask, other=0.0)
    m = tl.load(part_ptr + n_prog + progs, mask=mask, other=-INF)
    s = tl.load(part_ptr + 2 * n_prog + progs, mask=mask, other=0.0)
    _finish_bound(sum_j, m, s, bound_ptr, ema_ptr, new_ema_ptr, B, log_b, log_keep, log_rate,
                  F_DIV, HAS_EMA, ACC)


@triton.jit
def _mine_bwd_kernel(tm_ptr, ema_ptr, g_ptr, dtj_ptr, dtm_ptr, B,
                     F_DIV: tl.constexpr, ACC: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < B
    g = tl.load(g_ptr).to(ACC) / B
    x = tl.load(tm_ptr + offs, mask=mask, other=0.0).to(ACC)
    if F_DIV:
        shift = 1.0
    else:
        shift = tl.load(ema_ptr).to(ACC)
    store_narrowed(dtj_ptr + offs, tl.zeros([BLOCK], ACC) + g, mask)
    store_narrowed(dtm_ptr + offs, -g * tl.exp(x - shift), mask)


def _n_programs(device, B):
    n_blocks = triton.cdiv(B, REDUCE_BLOCK)
    if device.type != "cuda" or n_blocks <= ONE_PROGRAM_BLOCKS:
        return 1  # the CPU interpreter runs programs one after another; one is cheapest
    return min(n_blocks, MAX_PROGRAMS)


def _launch_bound(t_joint, t_marginal, log_ema, ema_rate, f_div):
    """(bound [], new log-average [] or None for MINE-f), each written by the kernel into its own
    buffer: a custom op's outputs may not alias one another, and a slice of a shared buffer
    would cost a copy kernel to return."""
    acc = acc_dtype(t_joint, t_marginal)
    bound = torch.empty((), device=t_joint.device, dtype=acc)
    new_ema = None if f_div else torch.empty((), device=t_joint.device, dtype=acc)
    B = t_joint.numel()
    n_prog = _n_programs(t_joint.device, B)
    parts = torch.empty(3 * n_prog, device=t_joint.device, dtype=acc) if n_prog > 1 else bound
    keep = math.log1p(-ema_rate) if ema_rate < 1 else -math.inf
    ema = bound if log_ema is None else log_ema
    finish = (ema, bound, bound if new_ema is None else new_ema)
    # at rate 1 (or 0) the old average's (or the batch's) term has weight 0: log 0 = -inf
    logs = (math.log(B), keep, math.log(ema_rate) if ema_rate > 0 else -math.inf)
    flags = dict(F_DIV=f_div, HAS_EMA=log_ema is not None, ACC=tl_dtype(acc))
    _mine_fwd_kernel[(n_prog,)](t_joint, t_marginal, *finish, parts, B, *logs, PARTIALS=n_prog > 1,
                                BLOCK=REDUCE_BLOCK, num_warps=4, **flags)
    if n_prog > 1:
        _mine_combine_kernel[(1,)](parts, *finish, n_prog, B, *logs,
                                   BLOCK_P=triton.next_power_of_2(n_prog), num_warps=4, **flags)
    return bound, new_ema


def _launch_bound_bwd(t_marginal, shift, grad, f_div, dtypes):
    B = t_marginal.numel()
    d_joint = torch.empty(B, device=t_marginal.device, dtype=dtypes[0])
    d_marg = torch.empty(B, device=t_marginal.device, dtype=dtypes[1])
    _mine_bwd_kernel[(triton.cdiv(B, REDUCE_BLOCK),)](
        t_marginal, shift, grad.contiguous(), d_joint, d_marg, B,
        F_DIV=f_div, ACC=tl_dtype(acc_dtype(t_marginal, grad)), BLOCK=REDUCE_BLOCK, num_warps=4,
    )
    return d_joint, d_marg


@on_inputs_device
def _mine_dv_bound(t_joint: torch.Tensor, t_marginal: torch.Tensor, log_ema: torch.Tensor | None,
                  ema_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """t_joint, t_marginal: contiguous [B]. Returns (bound [], new_log_ema [])."""
    return _launch_bound(t_joint, t_marginal, log_ema, ema_rate, f_div=False)


mine_dv_bound_op = torch.library.custom_op("fastinfo::mine_dv_bound", _mine_dv_bound, mutates_args=())


@mine_dv_bound_op.register_fake
def _(t_joint, t_marginal, log_ema, ema_rate):
    acc = acc_dtype(t_joint, t_marginal)
    return t_joint.new_empty((), dtype=acc), t_joint.new_empty((), dtype=acc)


@on_inputs_device
def _mine_bound_bwd(t_marginal: torch.Tensor, shift: torch.Tensor, grad: torch.Tensor, f_div: bool,
                    joint_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    return _launch_bound_bwd(t_marginal, shift, grad, f_div, (joint_dtype, t_marginal.dtype))


mine_bound_bwd_op = torch.library.custom_op("fastinfo::mine_bound_bwd", _mine_bound_bwd, mutates_args=())


@mine_bound_bwd_op.register_fake
def _(t_marginal, shift, grad, f_div, joint_dtype):
    return t_marginal.new_empty(t_marginal.shape, dtype=joint_dtype), torch.empty_like(t_marginal)


mine_bound_bwd = eager_entry(mine_bound_bwd_op, _mine_bound_bwd)


def _dv_setup(ctx, inputs, output):
    t_joint, t_marginal = inputs[0], inputs[1]
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)  # no zero-filled gradient for the average: one kernel less
    ctx.save_for_backward(t_marginal, output[1])
    ctx.joint_dtype = t_joint.dtype


def _dv_backward(ctx, grad_bound, _grad_ema):
    if grad_bound is None:
        return None, None, None, None
    t_marginal, new_log_ema = ctx.saved_tensors
    d_joint, d_marg = mine_bound_bwd(t_marginal, new_log_ema, grad_bound, False, ctx.joint_dtype)
    return d_joint, d_marg, None, None


mine_dv_bound = differentiable_entry(mine_dv_bound_op, _mine_dv_bound, _dv_setup, _dv_backward)


@on_inputs_device
def _mine_f_bound(t_joint: torch.Tensor, t_marginal: torch.Tensor) -> torch.Tensor:
    """t_joint, t_marginal: contiguous [B]. Returns the MINE-f bound []."""
    return _launch_bound(t_joint, t_marginal, None, 0.0, f_div=True)[0]


mine_f_bound_op = torch.library.custom_op("fastinfo::mine_f_bound", _mine_f_bound, mutates_args=())


@mine_f_bound_op.register_fake
def _(t_joint, t_marginal):
    return t_joint.new_empty((), dtype=acc_dtype(t_joint, t_marginal))


def _f_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])
    ctx.joint_dtype = inputs[0].dtype


def _f_backward(ctx, grad_bound):
    (t_marginal,) = ctx.saved_tensors
    d_joint, d_marg = mine_bound_bwd(t_marginal, t_marginal, grad_bound, True, ctx.joint_dtype)
    return d_joint, d_marg


mine_f_bound = differentiable_entry(mine_f_bound_op, _mine_f_bound, _f_setup, _f_backward)


# ---------------------------------------------------------------------------------------------
# Pairwise DV bound over all off-diagonal pairs of a separable critic.


@triton.jit
def _pair_tile(a, b_ptr, stride_b, j0, rows, B, D, L, ACC: tl.constexpr, DOT_DTYPE: tl.constexpr,
               PRECISION: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_D: tl.constexpr):
    """Scores S = a . b_j^T for one tile of columns, off-diagonal and in-range only
    (others -inf), minus L; with the tile of b."""
    cols = j0 + tl.arange(0, BLOCK_J)
    dims = tl.arange(0, BLOCK_D)
    b = tl.load(b_ptr + cols[:, None] * stride_b + dims[None, :],
                mask=(cols < B)[:, None] & (dims < D)[None, :], other=0.0)
    s = tl.dot(a.to(DOT_DTYPE), tl.trans(b.to(DOT_DTYPE)), out_dtype=ACC, input_precision=PRECISION)
    valid = (cols[None, :] < B) & (cols[None, :] != rows[:, None])
    return tl.where(valid, s - L, -INF), b


@triton.jit
def _pairwise_lse_kernel(a_ptr, b_ptr, stride_a, stride_b, row_lse_ptr, diag_ptr, B, D,
                         ACC: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
                         BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_D: tl.constexpr):
    """Per row i: log sum_{j != i} exp <a_i, b_j>, and the joint score <a_i, b_i>."""
    rows = tl.program_id(0) * BLOCK_I + tl.arange(0, BLOCK_I)
    dims = tl.arange(0, BLOCK_D)
    mask = (rows < B)[:, None] & (dims < D)[None, :]
    a = tl.load(a_ptr + rows[:, None] * stride_a + dims[None, :], mask=mask, other=0.0)
    b_diag = tl.load(b_ptr + rows[:, None] * stride_b + dims[None, :], mask=mask, other=0.0)
    tl.store(diag_ptr + rows, tl.sum(a.to(ACC) * b_diag.to(ACC), axis=1), mask=rows < B)
    m = tl.full([BLOCK_I], -INF, ACC)
    s = tl.zeros([BLOCK_I], ACC)
    for j0 in range(0, B, BLOCK_J):
        scores, _ = _pair_tile(a, b_ptr, stride_b, j0, rows, B, D, 0.0, ACC, DOT_DTYPE, PRECISION, BLOCK_J, BLOCK_D)
        m_new = tl.maximum(m, tl.max(scores, axis=1))
        s = rescale(s, m, m_new) + tl.sum(tl.exp(scores - lse_shift(m_new)[:, None]), axis=1)
        m = m_new
    tl.store(row_lse_ptr + rows, lse_shift(m) + tl.log(s), mask=rows < B)


@triton.jit
def _pairwise_grad_kernel(a_ptr, b_ptr, stride_a, stride_b, lse_ptr, g_ptr, da_ptr, B, D,
                          ACC: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
                          BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_D: tl.constexpr):
    """d bound / d a_i = g * (b_i / B - sum_{j != i} exp(<a_i, b_j> - L) b_j), L the total LSE.
    With a and b swapped the same kernel gives d bound / d b."""
    rows = tl.program_id(0) * BLOCK_I + tl.arange(0, BLOCK_I)
    dims = tl.arange(0, BLOCK_D)
    mask = (rows < B)[:, None] & (dims < D)[None, :]
    a = tl.load(a_ptr + rows[:, None] * stride_a + dims[None, :], mask=mask, other=0.0)
    L = tl.load(lse_ptr).to(ACC)
    acc = tl.zeros([BLOCK_I, BLOCK_D], ACC)
    for j0 in range(0, B, BLOCK_J):
        scores, b = _pair_tile(a, b_ptr, stride_b, j0, rows, B, D, L, ACC, DOT_DTYPE, PRECISION, BLOCK_J, BLOCK_D)
        p = tl.exp(scores)
        acc += tl.dot(p.to(DOT_DTYPE), b.to(DOT_DTYPE), out_dtype=ACC, input_precision=PRECISION)
    b_diag = tl.load(b_ptr + rows[:, None] * stride_b + dims[None, :], mask=mask, other=0.0).to(ACC)
    g = tl.load(g_ptr).to(ACC)
    tl.store(da_ptr + rows[:, None] * D + dims[None, :], g * (b_diag / B - acc), mask=mask)


def _pair_config(D: int, dtype: torch.dtype, on_gpu: bool, tf32: bool):
    """(launch parameters, accumulator dtype) for [B, D] embeddings of this dtype. tf32: whether
    fp32 products may run on tensor cores in TF32 (torch.backends.cuda.matmul.allow_tf32, which
    torch.set_float32_matmul_precision("high") sets), as torch's own products then do."""
    block_d = max(16, triton.next_power_of_2(D))
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    # halves multiply on tensor cores on a GPU; the CPU interpreter's half-precision dot is
    # unreliable, so there they are upcast first
    half = dtype in (torch.float16, torch.bfloat16) and on_gpu
    dot = {torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}[dtype] if half else tl_dtype(acc)
    # fp32 products in full precision unless TF32 is allowed (~1e-3 relative error a product)
    on_tensor_cores = half or (dtype == torch.float32 and tf32)
    precision = "tf32" if on_tensor_cores else "ieee"
    if on_tensor_cores:
        # tiles of 64 rows x 64 columns while the [rows, D] accumulators stay small; 32 for wide
        # D. fp32 tiles take twice the registers of half ones: at 4 warps the TF32 gradient kernel
        # used 204-251 registers a thread on sm_90 (Triton 3.6 and 3.8), at 8 warps 150-166
        block = 64 if block_d <= 64 else 32
        num_warps = 4 if half else 8
    else:
        # full-precision products run on FMA units with both tiles and the accumulator in
        # registers. Larger tiles spill on sm_90 with one Triton release or another: 64 rows at
        # D = 64 spill 112-152 bytes a thread with Triton 3.6, and 32 rows at D = 256 spill 5.7 KB
        # (3.6) or 5.9 KB (3.8) depending on the warps (tests/kernels/gpu_compile.py prints it)
        block, num_warps = (32, 8) if block_d <= 64 else (16, 4)
    return dict(ACC=tl_dtype(acc), DOT_DTYPE=dot, PRECISION=precision, BLOCK_I=block, BLOCK_J=block,
                BLOCK_D=block_d, num_warps=num_warps), acc


def _pair_meta(t: torch.Tensor):
    """_pair_config for embeddings like t, under torch's current TF32 setting."""
    return _pair_config(t.shape[1], t.dtype, t.is_cuda, torch.backends.cuda.matmul.allow_tf32)


@on_inputs_device
def _mine_dv_bound_pairwise(f_x: torch.Tensor, g_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f_x, g_y: [B, d] with unit stride along d. Returns (bound [], total log-sum-exp [])."""
    B, D = f_x.shape
    meta, acc = _pair_meta(f_x)
    row_lse = torch.empty(B, device=f_x.device, dtype=acc)
    diag = torch.empty(B, device=f_x.device, dtype=acc)
    _pairwise_lse_kernel[(triton.cdiv(B, meta["BLOCK_I"]),)](
        f_x, g_y, f_x.stride(0), g_y.stride(0), row_lse, diag, B, D, **meta)
    total = torch.logsumexp(row_lse, 0)
    return diag.mean() - (total - math.log(B * (B - 1))), total


mine_dv_bound_pairwise_op = torch.library.custom_op(
    "fastinfo::mine_dv_bound_pairwise", _mine_dv_bound_pairwise, mutates_args=())


@mine_dv_bound_pairwise_op.register_fake
def _(f_x, g_y):
    acc = acc_dtype(f_x)
    return f_x.new_empty((), dtype=acc), f_x.new_empty((), dtype=acc)


@on_inputs_device
def _mine_dv_bound_pairwise_bwd(f_x: torch.Tensor, g_y: torch.Tensor, total: torch.Tensor,
                                grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    B, D = f_x.shape
    meta, _ = _pair_meta(f_x)
    grads = []
    for a, b in ((f_x, g_y), (g_y, f_x)):
        da = torch.empty(B, D, device=a.device, dtype=a.dtype)
        _pairwise_grad_kernel[(triton.cdiv(B, meta["BLOCK_I"]),)](
            a, b, a.stride(0), b.stride(0), total, grad.contiguous(), da, B, D, **meta)
        grads.append(da)
    return grads[0], grads[1]


mine_dv_bound_pairwise_bwd_op = torch.library.custom_op(
    "fastinfo::mine_dv_bound_pairwise_bwd", _mine_dv_bound_pairwise_bwd, mutates_args=())


@mine_dv_bound_pairwise_bwd_op.register_fake
def _(f_x, g_y, total, grad):
    return torch.empty_like(f_x), torch.empty_like(g_y)


mine_dv_bound_pairwise_bwd = eager_entry(mine_dv_bound_pairwise_bwd_op, _mine_dv_bound_pairwise_bwd)


def _pair_setup(ctx, inputs, output):
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)  # no zero-filled gradient for the total: one kernel less
    ctx.save_for_backward(inputs[0], inputs[1], output[1])


def _pair_backward(ctx, grad_bound, _grad_total):
    if grad_bound is None:
        return None, None
    f_x, g_y, total = ctx.saved_tensors
    return mine_dv_bound_pairwise_bwd(f_x, g_y, total, grad_bound)


mine_dv_bound_pairwise = differentiable_entry(mine_dv_bound_pairwise_op, _mine_dv_bound_pairwise,
                                              _pair_setup, _pair_backward)
