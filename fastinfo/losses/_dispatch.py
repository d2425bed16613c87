"""Which implementation serves a call: the fused Triton kernels on CUDA tensors (and on CPU
tensors under TRITON_INTERPRET=1, for tests), the PyTorch reference otherwise; and the dtypes
the implementations share."""

import os

import torch

try:
    import triton  # noqa: F401

    HAVE_TRITON = True
except ImportError:  # a CPU-only torch build without Triton: the reference serves every call
    HAVE_TRITON = False

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# the element types the elementwise kernels (clip, RMSprop) take; float64 goes to torch's ops
KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def to_acc(t: torch.Tensor) -> torch.Tensor:
    """t in its accumulation dtype: float32, as the kernels accumulate; float64 stays float64."""
    return t if t.dtype == torch.float64 else t.float()


def use_triton(t: torch.Tensor) -> bool:
    """Whether the fused kernels serve tensors on t's device."""
    if not HAVE_TRITON:
        return False
    return t.device.type == "cuda" or (t.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1")
