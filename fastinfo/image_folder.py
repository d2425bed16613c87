"""Folders of image files (JPEG, PNG, ...) made into a uint8 tensor once: each image centre-
cropped to a square, resized to the networks' side and decoded with Pillow, the whole set cached
(fastinfo.checkpoint: written atomically, verified on load) so that later runs start at once.

Two layouts are read alike: torchvision's ImageFolder (ROOT/class/xxx.png) and a flat folder
(ROOT/xxx.png); every image file under the root counts, in the order of their sorted paths.
The set is grey (1 channel) when every image is, else RGB (3 channels; transparency dropped).
"""

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.datasets.folder import IMG_EXTENSIONS
from tqdm import tqdm

from fastinfo import checkpoint

# Pillow modes of images without colour: a set of only these is kept grey
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
# images decoded at once by the worker threads (Pillow releases the GIL while it decodes)
DECODE_THREADS = min(8, os.cpu_count() or 1)


class ImageFolderError(ValueError):
    """The folder holds no image, or a file that cannot be read as one."""


def image_files(root: Path) -> list[Path]:
    """Every image file under root (by torchvision's ImageFolder suffixes, any case), sorted."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())


def _unreadable(path: Path, error: Exception) -> ImageFolderError:
    return ImageFolderError(f"{path} is not a readable image ({str(error).splitlines()[0]}); remove or replace it")


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise _unreadable(path, e) from None
    return image


def is_grey(path: Path) -> bool:
    """Whether the image file has no colour channels (read from its header alone)."""
    try:
        with Image.open(path) as image:
            return image.mode in GREY_MODES
    except (OSError, UnidentifiedImageError) as e:
        raise _unreadable(path, e) from None


def decode(path: Path, size: int, grey: bool) -> np.ndarray:
    """One image file as uint8 [C, size, size] (C = 1 grey, 3 RGB): its centred square, the
    largest that fits, resized with Pillow's antialiased bicubic filter."""
    image = _open(path).convert("L" if grey else "RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    # cropped first: resizing with a box would blend the pixels just outside it into the border
    square = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
    array = np.asarray(square, dtype=np.uint8)
    return array[None] if grey else array.transpose(2, 0, 1)


def decode_all(paths: Sequence[Path], size: int, desc: str) -> torch.Tensor:
    """The image files as uint8 [N, C, size, size]: grey when every one is, else RGB.

    Raises:
        ImageFolderError: a file that is not a readable image (named).
    """
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        grey = all(pool.map(is_grey, paths))
        images = np.empty((len(paths), 1 if grey else 3, size, size), dtype=np.uint8)
        # a bar on a terminal (disable=None: none when stderr is a file): minutes for 200,000 photos
        decoded = pool.map(lambda p: decode(p, size, grey), paths)
        for i, array in enumerate(tqdm(decoded, total=len(paths), desc=desc, disable=None, leave=False)):
            images[i] = array
    return torch.from_numpy(images)


def fingerprint(paths: Sequence[Path], size: int) -> str:
    """What a cache must match: the side, and every file's path, size and modification time."""
    h = hashlib.sha1(str(size).encode())
    for p in paths:
        stat = p.stat()
        h.update(f"{p.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cached_decode(paths: Sequence[Path], size: int, cache: Path, desc: str) -> torch.Tensor:
    """decode_all(paths, size), read from cache when it was made from the same files, else
    decoded and written there (a cache cut short or from other files is made again)."""
    stamp = fingerprint(paths, size)
    if cache.is_file():
        try:
            checkpoint.verify(cache)
            state = torch.load(cache, map_location="cpu", weights_only=True)
            if state["fingerprint"] == stamp:
                return state["images"]
        except (checkpoint.CheckpointError, RuntimeError, KeyError, TypeError):
            pass  # a cache cut short or of another version: made again below
    images = decode_all(paths, size, desc)
    checkpoint.save({"fingerprint": stamp, "images": images}, cache)
    return images


def load(root: Path, size: int, cache_dir: Path) -> torch.Tensor:
    """Every image under root as uint8 [N, C, size, size] (see the module's docstring), through a
    cache file in cache_dir named after the folder and the side.

    Raises:
        ImageFolderError: root is no folder, holds no image, or holds a file that is unreadable.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ImageFolderError(f"{root} is not a folder; name the folder of images with --data-root")
    paths = image_files(root)
    if not paths:
        raise ImageFolderError(f"{root} holds no image file (accepted: {', '.join(IMG_EXTENSIONS)}, "
                               "in the folder or its subfolders)")
    key = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    return cached_decode(paths, size, cache_dir / f"folder-{key}-{size}.pt", f"decoding {root.name}")
