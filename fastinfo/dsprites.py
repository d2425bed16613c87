"""dSprites (Matthey et al. 2017): `--dataset dsprites`, 737,280 images of 64x64, one white sprite
on black for every combination of its five factors:
  shape        square, ellipse, heart (the labels 0, 1, 2)
  scale        6 values linearly spaced in [0.5, 1]
  orientation  40 values linearly spaced in [0, 2 pi] (the first and the last draw the same image)
  x, y         32 values each linearly spaced in [0, 1]
stored in the published order: y varies fastest, then x, orientation, scale and shape.

Read from DeepMind's file (FILE) where the user has it: in --data-root, $FASTINFO_DATA or the user
cache. Otherwise rendered here from that definition, deterministically and in seconds (never
cached: rendering is about as fast as reading 3 GB). The rendering is the project's own, not the
official bitmaps: the shapes are fastinfo.shapes' outlines, a sprite's half-size is 10 pixels
times its scale, and its centre moves one pixel per position step, from pixel 16 to 47 on each
axis (x right, y down); each pixel is on where its centre lies in the shape (binary, no
anti-aliasing, as the official images), turned counter-clockwise by the orientation. So the
factors, their values and the order are the official ones; the images are alike, not the same.

The test split is a fixed random subset of TEST_IMAGES of the images (the literature trains on all
of them and scores disentanglement on samples of the same set).
"""

import math
from pathlib import Path

import numpy as np
import torch

from fastinfo.shapes import SHAPES, inside

FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
FACTORS = ("shape", "scale", "orientation", "x", "y")
SIZE = 64
# how many values each factor takes, in the published order (the last varies fastest)
GRID = {"shape": len(SHAPES), "scale": 6, "orientation": 40, "x": 32, "y": 32}
HALF_SIZE = 10.0  # a sprite's half-size in pixels at scale 1
FIRST_CENTRE = 16  # the centre's pixel at position 0; position step k puts it at 16 + k
TEST_IMAGES = 10000
TEST_SEED = 20262


def factor_values(grid: dict[str, int] | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Every image's factors [N, 5] in the published order: the shape's index (0, 1, 2), then
    scale, orientation (radians), x and y in their published units."""
    grid = grid or GRID
    axes = [torch.arange(grid["shape"], dtype=torch.float64),
            torch.linspace(0.5, 1.0, grid["scale"], dtype=torch.float64),
            torch.linspace(0.0, 2 * math.pi, grid["orientation"], dtype=torch.float64),
            torch.linspace(0.0, 1.0, grid["x"], dtype=torch.float64),
            torch.linspace(0.0, 1.0, grid["y"], dtype=torch.float64)]
    return torch.cartesian_prod(*axes).to(dtype)


def sprite(shape: int, scale: float, angle: float) -> torch.Tensor:
    """One sprite, bool [SIZE, SIZE], centred on pixel (FIRST_CENTRE, FIRST_CENTRE)'s centre."""
    coords = torch.arange(SIZE, dtype=torch.float64) - FIRST_CENTRE
    dy, dx = torch.meshgrid(coords, coords, indexing="ij")
    # a whole turn is no turn: 2 pi draws what 0 draws, not what sin(2 pi) = -2e-16 tips over
    angle = math.remainder(angle, 2 * math.pi)
    cos, sin = math.cos(angle), math.sin(angle)
    # into the shape's frame: undo the rotation (counter-clockwise on screen, y down) and the scale
    u = (dx * cos - dy * sin) / (HALF_SIZE * scale)
    v = -(dx * sin + dy * cos) / (HALF_SIZE * scale)
    return inside(torch.tensor(shape), u.reshape(1, -1), v.reshape(1, -1)).reshape(SIZE, SIZE)


def render(grid: dict[str, int] | None = None) -> torch.Tensor:
    """All images, uint8 [N, 64, 64] (0 or 255), in the published order of factor_values(grid).
    Each (shape, scale, orientation) is drawn once; the positions are its shifts by whole pixels."""
    grid = grid or GRID
    nx, ny = grid["x"], grid["y"]
    values = factor_values({**grid, "x": 1, "y": 1}, torch.float64)
    out = torch.empty(len(values), nx, ny, SIZE, SIZE, dtype=torch.uint8)
    for i, (shape, scale, angle, _, _) in enumerate(values.tolist()):
        drawn = sprite(int(shape), scale, angle).to(torch.uint8) * 255
        # the sprite at offset (nx - 1, ny - 1) of a larger canvas: the window at (ny - 1 - y,
        # nx - 1 - x) shows it shifted by (x, y)
        canvas = torch.zeros(SIZE + ny - 1, SIZE + nx - 1, dtype=torch.uint8)
        canvas[ny - 1 :, nx - 1 :] = drawn
        windows = canvas.unfold(0, SIZE, 1).unfold(1, SIZE, 1)  # [ny, nx, SIZE, SIZE]
        out[i] = windows.flip(0, 1).transpose(0, 1)
    return out.reshape(-1, SIZE, SIZE)


def read_official(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [737280, 64, 64] in 0/255, factors float32 [737280, 5]) from DeepMind's file,
    its shape index counted from 0 as here.

    Raises:
        ValueError: the file does not hold the published arrays.
    """
    with np.load(path, allow_pickle=False, encoding="latin1") as npz:
        if "imgs" not in npz or "latents_values" not in npz:
            raise ValueError(f"it holds {', '.join(npz.files)}, not dSprites' imgs and latents_values")
        imgs, latents = npz["imgs"], npz["latents_values"]
    n = math.prod(GRID.values())
    if imgs.shape != (n, SIZE, SIZE) or latents.shape != (n, 6):
        raise ValueError(f"it holds images {imgs.shape} and factors {latents.shape}, expected "
                         f"({n}, {SIZE}, {SIZE}) and ({n}, 6)")
    factors = torch.from_numpy(latents[:, 1:].astype(np.float32))
    factors[:, 0] -= 1  # the file counts shapes from 1
    return torch.from_numpy(imgs).mul_(255), factors


def held_out_indices(n: int) -> torch.Tensor:
    """The test split's indices into the n images: a fixed random TEST_IMAGES of them, ascending."""
    gen = torch.Generator().manual_seed(TEST_SEED)
    return torch.randperm(n, generator=gen)[: min(TEST_IMAGES, n)].sort().values
