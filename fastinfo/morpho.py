"""Shape measures of digit images, Morpho-MNIST style (Castro et al. 2019): what a continuous
code should control.

- slant: the shear of the stroke from its second-order moments, as an angle in radians;
  positive when the top leans right.
- thickness: twice the mean distance from the skeleton to the stroke's edge (pixels): the
  distance transform gives the distance to the nearest background pixel's centre, half a pixel
  beyond the edge.
- width: horizontal extent of the stroke (pixels); area: stroke pixels.
"""

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

MEASURES = ("slant", "thickness", "width", "area")


def measure_one(image: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Measures of one image [H, W] with intensities in [0, 1]."""
    ink = image > threshold
    if not ink.any():
        return {m: float("nan") for m in MEASURES}
    rows, cols = np.nonzero(ink)
    w = image[rows, cols]
    r0, c0 = np.average(rows, weights=w), np.average(cols, weights=w)
    mu11 = np.average((rows - r0) * (cols - c0), weights=w)
    mu02 = np.average((rows - r0) ** 2, weights=w)
    # rows grow downwards: a stroke whose top leans right has cov(row, col) < 0
    slant = float(np.arctan(-mu11 / mu02)) if mu02 > 0 else 0.0
    skeleton = skeletonize(ink)
    distance = ndimage.distance_transform_edt(ink)
    return {
        "slant": slant,
        "thickness": float(2 * (distance[skeleton].mean() - 0.5)),
        "width": float(cols.max() - cols.min() + 1),
        "area": float(ink.sum()),
    }


def measure(images: np.ndarray) -> dict[str, np.ndarray]:
    """Measures of images [N, H, W] (or [N, 1, H, W]) with intensities in [0, 1]: name -> [N]."""
    images = images.reshape(images.shape[0], images.shape[-2], images.shape[-1])
    per_image = [measure_one(im) for im in images]
    return {m: np.array([p[m] for p in per_image]) for m in MEASURES}
