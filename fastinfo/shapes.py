"""A procedurally rendered data set whose factors are known: `--dataset shapes`.

Three shapes (square, ellipse, heart) drawn white on black at 28x28, so the paper's networks fit,
each with four continuous factors drawn uniformly and independently:
  scale     the shape's half-size, 4 to 7 pixels
  rotation  -45 to 45 degrees: every shape here looks different at each angle of that range
            (a square repeats every 90 degrees), so the factor is identifiable from the image
  x, y      the centre's offset from the image centre, -4 to 4 pixels (x right, y down)
Factors are stored in [-1, 1] (each range mapped linearly). The images are a deterministic
function of the split (train: 60,000 images, test: 10,000, each from its own seed), never
downloaded: rendered on the CPU at first use (about a minute) and cached, verified on load.
Pixels are anti-aliased: each holds the share of its 4x4 sub-pixel samples the shape covers.
"""

import math
from pathlib import Path

import torch

from fastinfo import checkpoint

SHAPES = ("square", "ellipse", "heart")
FACTORS = ("scale", "rotation", "x", "y")
SIZE = 28
SPLIT_SIZES = {True: 60000, False: 10000}
SPLIT_SEEDS = {True: 20260, False: 20261}
# where each factor's [-1, 1] maps to: half-size in pixels, angle in radians, offsets in pixels.
# The largest shape, turned 45 degrees at the largest offset, still fits: 7 * sqrt(2) + 4 < 14.
FACTOR_RANGES = {"scale": (4.0, 7.0), "rotation": (-math.pi / 4, math.pi / 4), "x": (-4.0, 4.0), "y": (-4.0, 4.0)}
SUPERSAMPLE = 4
VERSION = 1  # of the rendering: a cache written by another version is rendered again
CHUNK = 2048  # images rendered at once: bounds the memory of the sample grid


def inside(shape: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Whether the points (u, v) [..., P] of each image's own frame (unit half-size, v up) lie in
    its shape; shape [...] int, one per image, broadcast over the points."""
    shape = shape.unsqueeze(-1)
    square = torch.maximum(u.abs(), v.abs()) <= 0.85  # a square's area near the others'
    ellipse = u**2 + (v / 0.55) ** 2 <= 1.0  # elongated: its rotation shows
    # the heart curve (x^2 + y^2 - 1)^3 <= x^2 y^3 spans x in [-1.14, 1.14], y in [-1, 1.24]:
    # shifted and shrunk onto the unit square
    x, y = u * 1.14, v * 1.12 + 0.12
    heart = (x**2 + y**2 - 1) ** 3 <= x**2 * y**3
    return torch.where(shape == 0, square, torch.where(shape == 1, ellipse, heart))


def factor_values(factors: torch.Tensor) -> dict[str, torch.Tensor]:
    """Factors [N, 4] in [-1, 1] -> each in its own unit (pixels, radians)."""
    return {name: lo + (factors[:, i] + 1) * (hi - lo) / 2
            for i, (name, (lo, hi)) in enumerate(FACTOR_RANGES.items())}


def render(shapes: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Images uint8 [N, 28, 28] of shapes [N] (0 square, 1 ellipse, 2 heart) at factors [N, 4] in [-1, 1]."""
    images = []
    # sub-pixel sample positions in pixels, relative to the image centre (y down): [S*S*28*28] each
    step = 1.0 / SUPERSAMPLE
    offsets = torch.arange(SUPERSAMPLE, dtype=torch.float32) * step + step / 2
    coords = (torch.arange(SIZE, dtype=torch.float32)[:, None] + offsets).reshape(-1) - SIZE / 2
    py, px = torch.meshgrid(coords, coords, indexing="ij")
    px, py = px.reshape(1, -1), py.reshape(1, -1)
    for lo in range(0, len(shapes), CHUNK):
        f = factor_values(factors[lo : lo + CHUNK])
        scale, angle = f["scale"][:, None], f["rotation"][:, None]
        dx, dy = px - f["x"][:, None], py - f["y"][:, None]
        cos, sin = torch.cos(angle), torch.sin(angle)
        # into the shape's frame: undo the offset, the rotation (counter-clockwise on screen) and the scale
        u = (dx * cos - dy * sin) / scale
        v = -(dx * sin + dy * cos) / scale
        hit = inside(shapes[lo : lo + CHUNK], u, v).float()
        hit = hit.reshape(-1, SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE).mean((2, 4))
        images.append((hit * 255).round().to(torch.uint8))
    return torch.cat(images)


def generate(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images uint8 [n, 28, 28], shapes int64 [n], factors float32 [n, 4] in [-1, 1]), the same
    for the same (n, seed) on every machine."""
    gen = torch.Generator().manual_seed(seed)
    shapes = torch.randint(len(SHAPES), (n,), generator=gen)
    factors = torch.rand(n, len(FACTORS), generator=gen) * 2 - 1
    return render(shapes, factors), shapes, factors


def load(cache: Path, train: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The train or test split: (images, shapes, factors) as generate() gives them, read from the
    folder cache where an earlier call left them, else rendered and written there."""
    path = cache / f"shapes-v{VERSION}-{'train' if train else 'test'}.pt"
    n = SPLIT_SIZES[train]
    if path.is_file():
        try:
            checkpoint.verify(path)  # every record's CRC-32
            state = torch.load(path, weights_only=True)
            images, labels, factors = state["images"], state["shapes"], state["factors"]
            if (images.dtype == torch.uint8 and images.shape == (n, SIZE, SIZE) and labels.shape == (n,)
                    and factors.shape == (n, len(FACTORS))):
                return images, labels, factors
        except (checkpoint.CheckpointError, RuntimeError, KeyError, TypeError, AttributeError):
            pass  # a cache cut short or from elsewhere: rendered again
    images, labels, factors = generate(n, SPLIT_SEEDS[train])
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save({"images": images, "shapes": labels, "factors": factors}, path)
    return images, labels, factors
