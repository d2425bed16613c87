"""Which implementation serves a call: the fused Triton kernels on CUDA tensors (and on CPU
tensors under TRITON_INTERPRET=1, for tests), the PyTorch reference otherwise."""

import os

import numpy
import torch

try:
    import triton

    HAVE_TRITON = True
except ImportError:  # a CPU-only torch build without Triton: the reference serves every call
    HAVE_TRITON = False


# The loss kernels compute element offsets in 32-bit integers: an input whose elements reach this
# many past its first one takes the PyTorch reference instead.
INDEX_LIMIT = 2**31


def within_index_limit(*tensors: torch.Tensor | None) -> bool:
    """Whether the last element of each tensor lies less than INDEX_LIMIT elements past its first.
    A contiguous tensor's last element lies numel - 1 past: answered without walking its strides,
    as this runs on every eager call."""
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
