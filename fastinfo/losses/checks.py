"""The dtypes the fused ops and their references take, and the checks of their arguments."""

import math

import torch

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


def to_acc(t: torch.Tensor) -> torch.Tensor:
    """t in its accumulation dtype: float32, as the kernels accumulate; float64 stays float64."""
    return t if t.dtype == torch.float64 else t.float()
