"""A training step's metrics written into the next row of a device table, in one launch.

A step replayed from a CUDA graph cannot hand its metrics to the host: it writes them into row
`row` of a [n_rows, n_metrics] float32 table used as a ring and advances `row`, a device
counter, and the host reads the rows every few steps in one sync. With torch ops that is four
kernels a step (stack, index_copy_, add_, remainder_); here one program loads each metric,
stores the row and advances the counter.
"""

import torch
import triton
import triton.language as tl
from fastinfo.kernels.entry import on_inputs_device


@triton.jit
def _write_row_kernel(values, table_ptr, row_ptr, N_ROWS: tl.constexpr):
    row = tl.load(row_ptr)
    for i in tl.static_range(len(values)):
        tl.store(table_ptr + row * len(values) + i, tl.load(values[i]).to(tl.float32))
    tl.store(row_ptr, (row + 1) % N_ROWS)


@on_inputs_device
def write_row_(values: list[torch.Tensor], table: torch.Tensor, row: torch.Tensor) -> None:
    """table[row] = values (0-dim tensors, cast to float32); row = (row + 1) % len(table).
    table: contiguous float32 [n_rows, len(values)]; row: int64 [1], on the table's device."""
    if table.dtype != torch.float32 or not table.is_contiguous() or table.shape[1:] != (len(values),):
        raise ValueError(f"table must be contiguous float32 [n_rows, {len(values)}], got {table.dtype} "
                         f"{tuple(table.shape)}")
    if row.dtype != torch.int64 or row.numel() != 1:
        raise ValueError(f"row must be one int64, got {row.dtype} {tuple(row.shape)}")
    for i, v in enumerate(values):
        if v.numel() != 1 or v.device != table.device:
            raise ValueError(f"values[{i}] must be one number on {table.device}, got {tuple(v.shape)} on {v.device}")
    _write_row_kernel[(1,)](tuple(values), table, row, N_ROWS=table.shape[0], num_warps=1)
