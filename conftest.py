# Root conftest: runs before any test module imports a kernel.
import os

import torch

# Triton reads TRITON_INTERPRET when a kernel is defined: set it before fastinfo.kernels loads,
# so that on a machine without a GPU every kernel runs (slowly) on the CPU.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
