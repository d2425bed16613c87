"""WGAN weight clipping: every tensor of a parameter list clamped to [-c, c] in ONE launch.

The launch walks a device table with one row per block of BLOCK elements: (address, start,
numel, dtype code). Each tensor is dense (its elements fill [address, address + numel) in any
order), so its memory is clamped as one flat array. The table is built once per parameter list
(keyed by device, addresses, sizes and dtypes) and cached, so later calls do no host work beyond
the key and copy nothing to the device: safe inside CUDA-graph capture. A pointer table was
chosen over views into one flat buffer because it leaves the user's modules and optimisers
untouched.
"""

import functools

import torch
import triton
import triton.language as tl
from fastinfo.kernels.entry import on_inputs_device

# Elements per program: 4096 fp32 = 16 KB in flight per program. The CPU interpreter runs
# programs one after another (~1 ms each), so there a few large blocks are far cheaper.
BLOCK = 4096
INTERPRETER_BLOCK = 1 << 20
DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}
_TABLES: dict = {}
_MAX_TABLES = 16  # one per parameter list a program clips; more means parameters were re-allocated


@triton.jit
def clamp(x, clip):
    """x clamped to [-clip, clip]; comparisons leave NaN as it is, like torch.clamp."""
    return tl.where(x < -clip, -clip, tl.where(x > clip, clip, x))


@triton.jit
def _clamp_block(ptr, offs, mask, clip):
    """clip is exactly representable in the element type, so the final cast needs no rounding
    (the CPU interpreter and the GPU round differently)."""
    x = tl.load(ptr + offs, mask=mask).to(tl.float32)
    tl.store(ptr + offs, clamp(x, clip).to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _clip_kernel(table_ptr, clip_f32, clip_bf16, clip_f16, BLOCK: tl.constexpr):
    row = table_ptr + tl.program_id(0) * 4
    addr = tl.load(row)
    offs = tl.load(row + 1) + tl.arange(0, BLOCK)
    mask = offs < tl.load(row + 2)
    kind = tl.load(row + 3)
    if kind == 0:
        _clamp_block(addr.to(tl.pointer_type(tl.float32)), offs, mask, clip_f32)
    elif kind == 1:
        _clamp_block(addr.to(tl.pointer_type(tl.bfloat16)), offs, mask, clip_bf16)
    else:
        _clamp_block(addr.to(tl.pointer_type(tl.float16)), offs, mask, clip_f16)


@functools.lru_cache(maxsize=16)  # three tensors and three host reads a call otherwise
def clip_in_each_dtype(clip_value: float) -> tuple[float, float, float]:
    """The clip value rounded to fp32, bf16 and fp16 as torch.clamp rounds its result."""
    return tuple(torch.tensor(clip_value, dtype=d).item()
                 for d in (torch.float32, torch.bfloat16, torch.float16))


def block_table(params: list[torch.Tensor], block: int = BLOCK) -> torch.Tensor:
    """[n_blocks, 4] int64 rows (address, start, numel, dtype code), cached per parameter list."""
    key = (block, params[0].device, tuple((p.data_ptr(), p.numel(), p.dtype) for p in params))
    table = _TABLES.get(key)
    if table is None:
        rows = [(p.data_ptr(), start, p.numel(), DTYPE_CODES[p.dtype])
                for p in params for start in range(0, p.numel(), block)]
        table = torch.tensor(rows, dtype=torch.int64).view(-1, 4).to(params[0].device)
        if len(_TABLES) >= _MAX_TABLES:
            _TABLES.pop(next(iter(_TABLES)))
        _TABLES[key] = table
    return table


@torch.library.custom_op("fastinfo::clip_weights_", mutates_args=("params",))
@on_inputs_device
def clip_weights_(params: list[torch.Tensor], clip_value: float, block: int = 0) -> None:
    """block: elements per program; 0 picks BLOCK on a GPU and INTERPRETER_BLOCK on the CPU."""
    params = [p for p in params if p.numel() > 0]
    if not params:
        return
    block = block or (BLOCK if params[0].is_cuda else INTERPRETER_BLOCK)
    table = block_table(params, block)
    _clip_kernel[(table.shape[0],)](table, *clip_in_each_dtype(clip_value), BLOCK=block, num_warps=4)


@clip_weights_.register_fake
def _(params, clip_value, block=0):
    return None
