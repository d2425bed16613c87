"""The card's own memory bandwidth, the ceiling the kernels' GB/s are read against."""

import pytest
import torch

from bench.conftest import ON_GPU


@pytest.mark.skipif(not ON_GPU, reason="device bandwidth is measured on a GPU")
def test_copy_bandwidth(record):
    n = 1 << 28  # 1 GiB of fp32: far beyond L2
    src, dst = torch.empty(n, device="cuda"), torch.empty(n, device="cuda")
    record({"op": "d2d_copy", "bytes": 8 * n}, lambda: dst.copy_(src), bytes_moved=8 * n, graph=False)
