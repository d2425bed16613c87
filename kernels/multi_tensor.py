"""What the optimiser kernels share: one launch walks a list of tensors, one block of one tensor
per program.

The tensors are tuple arguments, not a device table of addresses as in clip.py: autograd gives
each step's gradients new addresses, and a table would have to be rebuilt and copied to the
device, which a CUDA-graph capture cannot do. Their sizes are compile-time constants: one build
per parameter layout.
"""

import triton
import triton.language as tl

# Elements per program: 4096 fp32 = 16 KB of each stream in flight. The CPU interpreter runs
# programs one after another, so there a few large blocks are far cheaper.
BLOCK = 4096
INTERPRETER_BLOCK = 1 << 20
# Tensors per launch: each adds a pointer argument a stream and a select a stream to every program
MAX_TENSORS = 64


def launches(columns, block: int = 0) -> tuple[int, list]:
    """(elements per program, one (columns, numels, starts) a launch) for parallel lists of
    tensors, one tensor a column a parameter: the parameters grouped by their own dtype and
    their gradient's (the first two columns) and cut into MAX_TENSORS, empty ones left out;
    starts holds each tensor's first program, then the number of programs. block 0 picks BLOCK
    on a GPU and INTERPRETER_BLOCK on the CPU."""
    rows = [r for r in zip(*columns) if r[0].numel() > 0]
    if not rows:
        return block, []
    block = block or (BLOCK if rows[0][0].is_cuda else INTERPRETER_BLOCK)
    groups: dict = {}
    for r in rows:
        groups.setdefault((r[0].dtype, r[1].dtype), []).append(r)
    out = []
    for same in groups.values():
        for i in range(0, len(same), MAX_TENSORS):
            cut = tuple(zip(*same[i:i + MAX_TENSORS]))
            numels = tuple(t.numel() for t in cut[0])
            starts = [0]
            for n in numels:
                starts.append(starts[-1] + triton.cdiv(n, block))
            out.append((cut, numels, tuple(starts)))
    return block, out


@triton.jit
def pick(values, pid, STARTS: tl.constexpr):
    """values[i] for the tensor i whose blocks hold program pid (STARTS: as launches gives them)."""
    value = values[0]
    for i in tl.static_range(1, len(values)):
        value = tl.where(pid >= STARTS[i], values[i], value)
    return value


@triton.jit
def block_offsets(pid, STARTS: tl.constexpr, BLOCK: tl.constexpr):
    """(this program's element offsets in its tensor, its block's first offset); 64-bit: a
    tensor may hold more than 2^31 elements."""
    start = (pid - pick(STARTS, pid, STARTS)).to(tl.int64) * BLOCK
    return start + tl.arange(0, BLOCK), start

