"""Compile every Triton kernel for an sm_90 GPU (H100/H200) on a machine without one.

The CPU interpreter accepts code the GPU compiler rejects (globals that are not constexpr,
Python calls inside a kernel, dot shapes); this catches those in the normal test suite. Run in a
fresh process without TRITON_INTERPRET: ``python -m tests.kernels.gpu_compile``.
"""

import os

os.environ.pop("TRITON_INTERPRET", None)

import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from fastinfo.kernels import clip, info_nll, mine  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
I32, F32, P32 = "i32", "fp32", "*fp32"


def build(fn, signature: dict, constexprs: dict):
    """Compile fn to a cubin for TARGET; raises triton's CompilationError on a bad kernel."""
    full = {**signature, **{k: "constexpr" for k in constexprs}}
    keyed = {(fn.arg_names.index(k),): v for k, v in constexprs.items()}
    return triton.compile(ASTSource(fn, full, constexprs=keyed), target=TARGET)


def cases():
    for dt in ("*fp32", "*bf16"):
        inputs = {
            "logits_ptr": dt, "stride_lb": I32, "stride_lk": I32, "codes_ptr": "*i64", "stride_cb": I32,
            "stride_cn": I32, "offsets_ptr": "*i32", "mean_ptr": dt, "stride_mb": I32, "stride_mn": I32,
            "cc_ptr": dt, "stride_ccb": I32, "stride_ccn": I32, "ls_ptr": dt, "stride_sb": I32, "stride_sn": I32,
        }
        scalars = {"B": I32, "cat_weight": F32, "cont_weight": F32, "scale": F32}
        common = dict(N_CAT=2, N_CONT=2, HAS_LOG_STD=True, ACC=tl.float32, BLOCK_B=64, BLOCK_K=16, BLOCK_C=2)
        yield (info_nll._info_nll_fwd_kernel,
               {**inputs, "loss_ptr": P32, "code_sum_ptr": P32, "lse_ptr": P32, **scalars},
               dict(common, PER_ROW=False, BLOCK_NC=4))
        yield (info_nll._info_nll_bwd_kernel,
               {**inputs, "lse_ptr": P32, "gloss_ptr": P32, "gcode_ptr": P32, "dlogits_ptr": dt,
                "dmean_ptr": dt, "dls_ptr": dt, **scalars},
               dict(common, PER_ROW=True, HAS_GLOSS=True, HAS_GCODE=True))
    yield clip._clip_kernel, {"table_ptr": "*i64", "clip_f32": F32, "clip_bf16": F32, "clip_f16": F32}, {"BLOCK": 4096}
    for f_div in (False, True):
        yield (mine._mine_fwd_kernel,
               {"tj_ptr": P32, "tm_ptr": P32, "ema_ptr": P32, "out_ptr": P32, "B": I32, "log_b": F32,
                "log_keep": F32, "log_rate": F32},
               dict(F_DIV=f_div, HAS_EMA=True, ACC=tl.float32, BLOCK=1024))
        yield (mine._mine_bwd_kernel,
               {"tm_ptr": P32, "ema_ptr": P32, "g_ptr": P32, "dtj_ptr": P32, "dtm_ptr": P32, "B": I32},
               dict(F_DIV=f_div, ACC=tl.float32, BLOCK=1024))
    for dt, dot, precision in (("*fp32", tl.float32, "ieee"), ("*bf16", tl.bfloat16, "tf32")):
        tiles = dict(ACC=tl.float32, DOT_DTYPE=dot, PRECISION=precision, BLOCK_I=32, BLOCK_J=32, BLOCK_D=256)
        pair = {"a_ptr": dt, "b_ptr": dt, "stride_a": I32, "stride_b": I32}
        yield mine._pairwise_lse_kernel, {**pair, "row_lse_ptr": P32, "diag_ptr": P32, "B": I32, "D": I32}, tiles
        yield (mine._pairwise_grad_kernel,
               {**pair, "lse_ptr": P32, "g_ptr": P32, "da_ptr": dt, "B": I32, "D": I32}, tiles)


def main():
    for fn, signature, constexprs in cases():
        build(fn, signature, constexprs)
        print(f"compiled {fn.__name__} for sm_90")


if __name__ == "__main__":
    main()
