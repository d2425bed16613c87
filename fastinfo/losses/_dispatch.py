"""Which implementation serves a call: the fused Triton kernels on CUDA tensors (and on CPU
tensors under TRITON_INTERPRET=1, for tests), the PyTorch reference otherwise; and the dtypes
the implementations share."""

import functools
import hashlib
import importlib.util
import math
import os
from pathlib import Path

import numpy
import torch

try:
    import triton

    HAVE_TRITON = True
except ImportError:  # a CPU-only torch build without Triton: the reference serves every call
    HAVE_TRITON = False

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# the element types the elementwise kernels (clip, RMSprop, Adam) take; float64 goes to torch's ops
KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def check_number(name: str, value, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
                 hint: str = "") -> None:
    """Raise unless value is a finite Python number (not a bool, not a tensor: a tensor would be
    read on the host, a sync and an error in CUDA-graph capture) in [low, high], or (low, high]."""
    if isinstance(value, torch.Tensor) or not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a Python number, got {type(value).__name__}{hint}")
    # comparisons, not math.isfinite: torch.compile traces them on a symbolic number as guards
    if not (-math.inf < value < math.inf and (value > low if low_open else value >= low) and value <= high):
        bounds = "" if (low, high) == (-math.inf, math.inf) else f" in {'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name} must be a finite number{bounds}, got {value}")


# The loss kernels compute element offsets in 32-bit integers: an input whose elements reach this
# many past its first one takes the PyTorch reference instead.
INDEX_LIMIT = 2**31


def within_index_limit(*tensors: torch.Tensor | None) -> bool:
    """Whether the last element of each tensor lies less than INDEX_LIMIT elements past its first.
    A contiguous tensor's last element lies numel - 1 past: answered without walking its strides
    (on a 2-core CPU, 1 µs against 4 µs for info_nll's five inputs, on every eager call)."""
    return all(t is None or (t.numel() <= INDEX_LIMIT if t.is_contiguous() else
                             sum((n - 1) * s for n, s in zip(t.shape, t.stride())) < INDEX_LIMIT)
               for t in tensors)


def is_dense(t: torch.Tensor) -> bool:
    """Whether t's elements fill its memory span without gaps or overlaps, in any dimension order
    (contiguous, channels-last, transposed): a kernel may walk them as one flat array."""
    expected = 1
    for size, stride in sorted(((s, st) for s, st in zip(t.shape, t.stride()) if s != 1), key=lambda x: x[1]):
        if stride != expected:
            return False
        expected *= size
    return True


def to_acc(t: torch.Tensor) -> torch.Tensor:
    """t in its accumulation dtype: float32, as the kernels accumulate; float64 stays float64."""
    return t if t.dtype == torch.float64 else t.float()


def _major_minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def interpreter_problem(triton_version: str, numpy_version: str) -> str | None:
    """Why Triton's CPU interpreter (TRITON_INTERPRET=1) cannot run the kernels, or None."""
    # Before 3.7 the interpreter turns a scalar into a Python int with int() of a one-element
    # array, which NumPy 2.4 refuses: every kernel whose loop bounds come from its arguments fails
    if _major_minor(triton_version) < (3, 7) and _major_minor(numpy_version) >= (2, 4):
        return (
            f"Triton {triton_version}'s CPU interpreter (TRITON_INTERPRET=1) cannot run fastinfo's "
            f"kernels with NumPy {numpy_version}: it needs NumPy < 2.4 (pip install 'numpy<2.4') "
            "or Triton >= 3.7"
        )
    return None


INTERPRETER_PROBLEM = interpreter_problem(triton.__version__, numpy.__version__) if HAVE_TRITON else None


def fingerprint(folders) -> str:
    """A hash of the names and contents of the Python files in these folders."""
    digest = hashlib.sha256()
    for path in sorted(f for folder in folders for f in Path(folder).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def sources_fingerprint() -> str:
    """fingerprint of the fused ops' sources: their kernels, wrappers and autograd formulas."""
    folders = [Path(__file__).parent]
    if HAVE_TRITON:
        folders += importlib.util.find_spec("fastinfo.kernels").submodule_search_locations
    return fingerprint(folders)


def tag_compile_cache() -> None:
    """Add the fused ops' fingerprint to torch.compile's cache key tag. The caches know a custom
    op by its name, not its code (pytorch/pytorch#144344): a graph compiled before fastinfo
    changed would call the old op, or keep its old backward formula."""
    tag = f"fastinfo-{sources_fingerprint()}"
    current = torch.compiler.config.cache_key_tag
    if tag not in current.split("+"):
        torch.compiler.config.cache_key_tag = f"{current}+{tag}" if current else tag


def use_triton(t: torch.Tensor) -> bool:
    """Whether the fused kernels serve tensors on t's device."""
    if not HAVE_TRITON:
        return False
    if t.device.type == "cuda":
        return True
    interpreted = t.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"
    if interpreted and INTERPRETER_PROBLEM:
        raise RuntimeError(INTERPRETER_PROBLEM)
    return interpreted
