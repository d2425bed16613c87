import os
from pathlib import Path

import pytest
import torch

# Triton reads TRITON_INTERPRET when a kernel is defined: set it before fastinfo.kernels loads,
# so that on a machine without a GPU every kernel runs (slowly) on the CPU. Here, not in a root
# conftest: the benchmarks (bench/) time what a user's CPU runs, the PyTorch reference.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty user cache; real data only through $FASTINFO_DATA."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def synthetic_mnist(monkeypatch):
    """64 blob images per split with labels (a bar at a height that depends on the label);
    replaces the real data set for the test."""
    from fastinfo import data

    def load(name, train=True, data_root=None, download=True, size=None):
        data.dataset_info(name)
        g = torch.Generator().manual_seed(0 if train else 1)
        labels = torch.randint(0, 10, (64,), generator=g)
        images = (torch.rand(64, 28, 28, generator=g) * 60).to(torch.uint8)
        for i, k in enumerate(labels.tolist()):
            images[i, 4 + 2 * k : 10 + 2 * k, 6:22] = 255
        return images, labels

    monkeypatch.setattr(data, "load", load)


@pytest.fixture
def real_data(monkeypatch):
    """Point $FASTINFO_DATA at the real MNIST / Fashion-MNIST files, or skip."""
    root = os.environ.get("FASTINFO_DATA") or (str(SHARED_DATA) if SHARED_DATA.is_dir() else None)
    if root is None or not Path(root).is_dir():
        pytest.skip("real MNIST not available: set FASTINFO_DATA to a folder holding it")
    monkeypatch.setenv("FASTINFO_DATA", root)
    return Path(root)


def pytest_configure(config):
    from fastinfo.losses import tag_compile_cache
    from fastinfo.losses.backend import INTERPRETER_PROBLEM

    if os.environ.get("TRITON_INTERPRET") == "1" and INTERPRETER_PROBLEM:
        raise pytest.UsageError(INTERPRETER_PROBLEM)
    # the tests compile the fused ops directly too: no graph compiled from other sources of them
    tag_compile_cache()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
