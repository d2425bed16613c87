"""Compile every Triton kernel for an sm_90 GPU (H100/H200) on a machine without one.

The CPU interpreter accepts code the GPU compiler rejects (globals that are not constexpr,
Python calls inside a kernel, dot shapes); this catches those in the normal test suite. Each
kernel is built at the launch parameters its wrapper picks, and ptxas's report of its registers,
stack frame and spilled bytes (which go through local memory on every use) is printed. Run in
a fresh process without TRITON_INTERPRET: ``python -m tests.kernels.gpu_compile``. Register
allocation changes from one Triton release to the next: to check the release a GPU machine
runs, put a directory holding it first on PYTHONPATH. Then each op's wrapper makes its launches
as on a GPU, through Triton's JIT with a stand-in sm_90 driver that builds them and runs nothing.
"""

import contextlib
import itertools
import os
import re
import subprocess
import tempfile
from pathlib import Path
from unittest import mock

os.environ.pop("TRITON_INTERPRET", None)

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from fastinfo.kernels import adam, clip, info_nll, metric_ring, mine, multi_tensor, rmsprop  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402
from triton.runtime.driver import driver  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
I32, F32, F64, P32 = "i32", "fp32", "fp64", "*fp32"
FLOAT_BITS = {"fp16": 16, "bf16": 16, "fp32": 32, "fp64": 64}
PTXAS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
# info_nll's layouts (B, cat_sizes, n_cont, unit inner strides): MNIST's (one 10-way code, two
# continuous) at the benchmark's batch sizes, a 1000-way code, and strided codes wider than one
# chunk; each built at the tiling the wrapper picks for it
INFO_NLL_LAYOUTS = [(64, (10,), 2, True), (256, (10,), 2, True), (65536, (10,), 2, True),
                    (4096, (1000,), 2, True), (64, (10, 3, 1030), 3, False)]


def build(fn, signature: dict, constexprs: dict, num_warps: int = 4):
    """Compile fn to a cubin for TARGET; raises triton's CompilationError on a bad kernel."""
    full = {**signature, **{k: "constexpr" for k in constexprs}}
    keyed = {(fn.arg_names.index(k),): v for k, v in constexprs.items()}
    return triton.compile(ASTSource(fn, full, constexprs=keyed), target=TARGET, options={"num_warps": num_warps})


def resources(kernel) -> str:
    """Registers, stack frame and spilled bytes (stores) a thread uses: ptxas's report on the
    kernel's PTX, built again with the options Triton builds it with."""
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as f:
        f.write(kernel.asm["ptx"])
        f.flush()
        log = subprocess.run([PTXAS, "-lineinfo", "-v", f"--gpu-name=sm_{TARGET.arch}a", f.name, "-o", os.devnull],
                             capture_output=True, text=True, check=True).stderr
    regs = re.search(r"Used (\d+) registers", log)
    stack = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores", log)
    return f"REG={regs[1]} STACK={stack[1]} SPILL={stack[2]}"


def rounded_scalars(signature: dict) -> list[str]:
    """The float scalar arguments of a build narrower than its widest float tensor, such as a
    float64 loss's weights rounded to float32 on their way in."""
    def flat(ty):  # a tuple argument's type is the tuple of its members' types
        return [t for member in ty for t in flat(member)] if isinstance(ty, tuple) else [ty]

    types = {name: flat(ty) for name, ty in signature.items()}
    widest = max((FLOAT_BITS.get(t[1:], 0) for ts in types.values() for t in ts if t.startswith("*")), default=0)
    return [f"{name}: {t}" for name, ts in types.items() for t in ts if FLOAT_BITS.get(t, 64) < widest]


def info_nll_cases():
    for dt in ("*fp32", "*bf16"):
        inputs = {
            "logits_ptr": dt, "stride_lb": I32, "codes_ptr": "*i64", "stride_cb": I32,
            "mean_ptr": dt, "stride_mb": I32, "cc_ptr": dt, "stride_ccb": I32, "ls_ptr": dt, "stride_sb": I32,
        }
        inner = ("stride_lk", "stride_cn", "stride_mn", "stride_ccn", "stride_sn")
        scalars = {"B": I32, "cat_weight": F64, "cont_weight": F64, "scale": F64}
        for B, sizes, n_cont, unit in INFO_NLL_LAYOUTS:
            # a unit stride is a constant, as Triton specialises an integer argument equal to 1
            strides = {k: 1 for k in inner} if unit else {}
            inputs_b = inputs if unit else {**inputs, **{k: I32 for k in inner}}
            t = info_nll._tiling(sizes, n_cont, B)
            common = dict(strides, OFFSETS=info_nll._offsets(sizes), N_CAT=len(sizes), N_CONT=n_cont,
                          HAS_LOG_STD=True, ACC=tl.float32, BLOCK_B=t.block_b, BLOCK_K=t.block_k)
            name = f"B={B} K={'+'.join(map(str, sizes))} {dt[1:]}{'' if unit else ' strided'}"
            yield (f"info_nll fwd {name}", info_nll._info_nll_fwd_kernel,
                   {**inputs_b, "loss_ptr": P32, "code_sum_ptr": P32, "lse_ptr": P32, **scalars},
                   dict(common, PER_ROW=False, BLOCK_NC=t.block_nc), t.num_warps)
            yield (f"info_nll bwd {name}", info_nll._info_nll_bwd_kernel,
                   {**inputs_b, "lse_ptr": P32, "gloss_ptr": P32, "gcode_ptr": P32, "dlogits_ptr": dt,
                    "dmean_ptr": dt, "dcc_ptr": dt, "dls_ptr": dt, **scalars},
                   dict(common, PER_ROW=False, HAS_GLOSS=True, HAS_GCODE=True, HAS_DCODES=not unit,
                        BLOCK_C=t.block_c), t.num_warps)
    # the forward's partial sums from as many programs as an H200 (132 SMs) gets, MNIST's three codes
    block_p = min(info_nll.MAX_SUM_BLOCK, triton.next_power_of_2(info_nll.PROGRAMS_PER_SM * 132))
    yield ("info_nll sum of partials", info_nll._sum_partials_kernel,
           {"loss_part_ptr": P32, "code_part_ptr": P32, "loss_ptr": P32, "per_code_ptr": P32, "n_prog": I32},
           dict(NC=3, SUM_LOSS=True, BLOCK_P=block_p, BLOCK_NC=4), info_nll._warps_for(block_p * 4))


def cases():
    yield from info_nll_cases()
    yield ("clip", clip._clip_kernel, {"table_ptr": "*i64", "clip_f32": F32, "clip_bf16": F32, "clip_f16": F32},
           {"BLOCK": clip.BLOCK}, 4)
    for f_div in (False, True):
        logs = {"B": I32, "log_b": F64, "log_keep": F64, "log_rate": F64}
        for partials in (False, True):
            yield (f"mine fwd f_div={f_div} partials={partials}", mine._mine_fwd_kernel,
                   {"tj_ptr": P32, "tm_ptr": P32, "ema_ptr": P32, "bound_ptr": P32, "new_ema_ptr": P32,
                    "part_ptr": P32, **logs},
                   dict(F_DIV=f_div, HAS_EMA=True, PARTIALS=partials, ACC=tl.float32, BLOCK=mine.REDUCE_BLOCK), 4)
        yield (f"mine combine f_div={f_div}", mine._mine_combine_kernel,
               {"part_ptr": P32, "ema_ptr": P32, "bound_ptr": P32, "new_ema_ptr": P32, "n_prog": I32, **logs},
               dict(F_DIV=f_div, HAS_EMA=True, ACC=tl.float32, BLOCK_P=mine.MAX_PROGRAMS), 4)
        yield (f"mine bwd f_div={f_div}", mine._mine_bwd_kernel,
               {"tm_ptr": P32, "ema_ptr": P32, "g_ptr": P32, "dtj_ptr": P32, "dtm_ptr": P32, "B": I32},
               dict(F_DIV=f_div, ACC=tl.float32, BLOCK=mine.REDUCE_BLOCK), 4)
    # the pairwise bound at the launch parameters its wrapper picks, for narrow and wide embeddings
    # (fp32 in full precision and in TF32)
    for dt, torch_dtype, tf32 in (("*fp32", torch.float32, False), ("*fp32", torch.float32, True),
                                  ("*bf16", torch.bfloat16, False)):
        for D in (64, 256):
            meta, _ = mine._pair_config(D, torch_dtype, on_gpu=True, tf32=tf32)
            num_warps = meta.pop("num_warps")
            pair = {"a_ptr": dt, "b_ptr": dt, "stride_a": I32, "stride_b": I32}
            name = f"D={D} {dt[1:]}{' tf32' if tf32 else ''}"
            yield (f"pairwise lse {name}", mine._pairwise_lse_kernel,
                   {**pair, "row_lse_ptr": P32, "diag_ptr": P32, "B": I32, "D": I32}, meta, num_warps)
            yield (f"pairwise grad {name}", mine._pairwise_grad_kernel,
                   {**pair, "lse_ptr": P32, "g_ptr": P32, "da_ptr": dt, "B": I32, "D": I32}, meta, num_warps)


@contextlib.contextmanager
def tf32_allowed(allowed: bool):
    """torch.backends.cuda.matmul.allow_tf32 set within (mock cannot restore that attribute)."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


class Sm90Driver:
    """Triton's active driver on a machine without a GPU: it names an sm_90 target, device 0 and
    stream 0, so that the JIT binds and builds each launch as for an H100."""

    def get_current_target(self):
        return TARGET

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0


def wrapper_launches() -> tuple[list[str], list[str]]:
    """Each op's wrapper called as on a GPU (CPU tensors standing in), every launch it makes going
    through Triton's JIT for sm_90 (argument specialisation, constexpr binding, the build, the
    checks before a launch) and stopping short of running: this catches what only that path
    checks. Returns the kernels launched, with their warps and ptxas's report, and the launches
    whose float arguments the JIT typed narrower than their tensors (the interpreter keeps Python
    floats as they are). The stand-in driver stays active (a real one cannot be made without a
    GPU): call this last in a process."""
    launched, rounded = set(), set()

    def build_only(kernel, grid):
        def launch(*args, **kwargs):
            built = kernel.run(*args, grid=grid, warmup=True, **kwargs)
            launched.add(f"{kernel.fn.__name__} num_warps={built.metadata.num_warps}: {resources(built)}")
            if narrow := rounded_scalars(built.src.signature):
                rounded.add(f"{kernel.fn.__name__} ({', '.join(narrow)})")
        return launch

    driver.set_active(Sm90Driver())
    # several programs a launch, as on a GPU (the CPU interpreter runs one)
    with mock.patch.object(JITFunction, "__getitem__", build_only), \
            mock.patch.object(info_nll, "_n_programs", lambda device, n_blocks: min(n_blocks, 528)):
        for B, sizes, n_cont in ((64, (10,), 2), (65536, (10,), 2), (4096, (1000,), 2), (37, (7, 3, 5), 3)):
            # float64 at the odd layout, alone and beside 16-bit inputs: its builds' argument types
            # and its gradients' stores into 16-bit tensors are checked too
            float64 = [(torch.float64,) * 4, (torch.bfloat16, torch.float64, torch.float16, torch.float64)]
            for dtypes in [(torch.float32,) * 4, (torch.bfloat16,) * 4] + (float64 if B == 37 else []):
                logits, mean, log_std, cont = (torch.randn(B, n, dtype=dtype)
                                               for n, dtype in zip((sum(sizes), *[n_cont] * 3), dtypes))
                codes = torch.zeros(B, len(sizes), dtype=torch.long)
                for reduction in ("mean", "none"):
                    loss, _, lse = info_nll.info_nll_op(logits, codes, mean, cont, log_std, list(sizes), 1.0, 0.1,
                                                        reduction)
                    info_nll.info_nll_bwd(logits, codes, mean, cont, log_std, lse, torch.ones_like(loss), None,
                                          list(sizes), 1.0, 0.1, reduction, B == 37)
        # one program; programs and the launch that combines them
        for B, dtype in itertools.product((256, 65536), (torch.float32, torch.float64)):
            t = torch.randn(B, dtype=dtype)
            with mock.patch.object(mine, "_n_programs", lambda device, B: min(triton.cdiv(B, mine.REDUCE_BLOCK),
                                                                              mine.MAX_PROGRAMS)):
                mine.mine_dv_bound_op(t, t, torch.zeros((), dtype=dtype), 0.01)
                mine.mine_f_bound_op(t, t)
        # float64 scores beside bf16 ones
        mine.mine_bound_bwd(t, torch.zeros(()), torch.ones(()), False, torch.bfloat16)
        for D, tf32 in itertools.product((64, 256), (False, True)):
            f = torch.randn(128, D)
            with tf32_allowed(tf32):
                _, total = mine.mine_dv_bound_pairwise_op(f, f)
                mine.mine_dv_bound_pairwise_bwd(f, f, total, torch.ones(()))
        clip.clip_weights_([torch.randn(3000), torch.randn(7, dtype=torch.bfloat16)], 0.01, clip.BLOCK)
        metric_ring.write_row_([torch.zeros(()), torch.zeros(2, dtype=torch.bfloat16)[1]], torch.zeros(5, 2),
                               torch.zeros(1, dtype=torch.long))
        # the InfoGAN critic's layout, and two dtypes in one call
        for ps in ([torch.randn(n) for n in (1024, 64, 131072, 128, 128, 128, 6422528, 1024, 1024, 1024, 1024, 1)],
                   [torch.randn(9000, dtype=torch.bfloat16), torch.randn(7, dtype=torch.float16)]):
            rmsprop.rmsprop_(ps, ps, ps, [], 5e-5, 0.99, 1e-8, 0.0, 0.01, multi_tensor.BLOCK)
            rmsprop.rmsprop_(ps, ps, ps, [], 5e-5, 0.99, 1e-8, 0.1, 0.0, multi_tensor.BLOCK)
            steps = [torch.ones(()) for _ in ps]
            adam.adam_(ps, ps, ps, ps, steps, [], 1e-3, 0.5, 0.999, 1e-8, 0.0, multi_tensor.BLOCK)
        # with bf16 copies: fp32 parameters, bf16 gradients and copies
        ps = [torch.randn(n) for n in (1024, 6422528, 1)]
        cs = [p.bfloat16() for p in ps]
        rmsprop.rmsprop_(ps, cs, ps, cs, 5e-5, 0.99, 1e-8, 0.0, 0.01, multi_tensor.BLOCK)
        adam.adam_(ps, cs, ps, ps, [torch.ones(()) for _ in ps], cs, 1e-3, 0.5, 0.999, 1e-8, 0.0, multi_tensor.BLOCK)
    return sorted(launched), sorted(rounded)


def main():
    print(f"triton {triton.__version__}")
    for name, fn, signature, constexprs, num_warps in cases():
        print(f"compiled {name} for sm_90: {resources(build(fn, signature, constexprs, num_warps))}")
    launched, rounded = wrapper_launches()
    for kernel in launched:
        print(f"launched {kernel}")
    for kernel in rounded:
        print(f"rounded arguments of {kernel}")


if __name__ == "__main__":
    main()
