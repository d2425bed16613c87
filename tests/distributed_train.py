"""`python -m fastinfo.train` on 64 random 28x28 images a split, for the torchrun tests of
tests/test_distributed.py (each process torchrun starts runs this)."""

import sys

import torch

from fastinfo import data, train


def random_images(name, train=True, data_root=None, download=True, size=None):
    g = torch.Generator().manual_seed(0 if train else 1)
    return torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8, generator=g), torch.randint(0, 10, (64,), generator=g)


if __name__ == "__main__":
    data.load = random_images
    sys.exit(train.main())
