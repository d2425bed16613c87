"""The card's own memory bandwidth, the ceiling the kernels' GB/s are read against."""

import pytest
import torch

from bench.measure import ON_GPU
from bench.test_info_nll import bytes_moved

# what info_nll's forward+backward moves (fp32) at its two bandwidth-bound benchmark cases
OP_BYTES = {"info_nll_B65536_K10": bytes_moved(65536, (10,), 2, 4, True),
            "info_nll_B4096_K1000": bytes_moved(4096, (1000,), 2, 4, True)}


@pytest.mark.skipif(not ON_GPU, reason="device bandwidth is measured on a GPU")
def test_copy_bandwidth(record):
    n = 1 << 28  # 1 GiB of fp32: far beyond L2
    src, dst = torch.empty(n, device="cuda"), torch.empty(n, device="cuda")
    record({"op": "d2d_copy", "bytes": 8 * n}, lambda: dst.copy_(src), bytes_moved=8 * n, graph=False)


@pytest.mark.skipif(not ON_GPU, reason="device bandwidth is measured on a GPU")
@pytest.mark.parametrize("launches", [1, 2])
@pytest.mark.parametrize("size", OP_BYTES)
def test_copy_of_an_ops_size(record, size, launches):
    """The bandwidth plain copies of as many bytes as one op moves reach, in one launch or two (as
    a forward and a backward), timed like the ops (the graph column): at a few MB, launch latency
    and the L2 cache count, so this, not the large copy, is the ceiling such an op can reach."""
    n = OP_BYTES[size] // 8 // launches  # fp32 values a copy reads, and writes
    pairs = [(torch.empty(n, device="cuda"), torch.empty(n, device="cuda")) for _ in range(launches)]
    record({"op": "d2d_copy", "size_of": size, "launches": launches, "bytes": 8 * n * launches},
           lambda: [dst.copy_(src) for src, dst in pairs], bytes_moved=8 * n * launches)
