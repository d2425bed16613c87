"""SVHN and CelebA, read through torchvision's classes from a local copy (found under
--data-root, $FASTINFO_DATA or the user cache), else downloaded by torchvision into the cache
where the machine reaches its servers.

SVHN: the train and test .mat files, 32x32 RGB house-number digits labelled 0..9.
CelebA: the aligned faces (img_align_celeba/) with their split and attribute lists; each face
centre-cropped to a square, resized and cached by fastinfo.image_folder. Its 40 binary
attributes are the known factors the disentanglement scores are measured against; it has no
classes.
"""

import socket
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision import datasets

from fastinfo import image_folder

# the folders a data root may hold each set's files in ("" is the root itself); torchvision's
# CelebA reads ROOT/celeba/, so its candidates are the roots of that folder
SVHN_FOLDERS = ("", "svhn", "SVHN")
CELEBA_ROOTS = ("", "..")
CONNECT_TIMEOUT_S = 20  # each connection of a download
HOW_TO_GET = {
    "svhn": "put train_32x32.mat and test_32x32.mat (http://ufldl.stanford.edu/housenumbers/) in a folder",
    "celeba": "put CelebA's img_align_celeba/ folder and its list_eval_partition.txt, list_attr_celeba.txt, "
              "identity_CelebA.txt, list_bbox_celeba.txt and list_landmarks_align_celeba.txt "
              "(https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html) in a folder named celeba",
}


class MissingSetError(FileNotFoundError):
    """The set's files are in none of the folders looked in, and could not be downloaded."""


def _found(open_set: Callable[[Path, bool], object], roots: list[Path], subfolders: tuple[str, ...],
           cache: Path, download: bool, name: str):
    """The first of open_set(folder, download=False) over roots x subfolders that finds the files,
    else open_set(cache, download=True) where download is allowed."""
    for root in roots:
        for sub in subfolders:
            try:
                return open_set(root / sub, False)
            except RuntimeError:  # torchvision's "Dataset not found or corrupted"
                continue
    tried = ", ".join(str(r) for r in roots)
    if download:
        # torchvision's urlopen waits forever by default: an unreachable server would hold the run
        before = socket.getdefaulttimeout()
        socket.setdefaulttimeout(CONNECT_TIMEOUT_S)
        try:
            return open_set(cache, True)
        except Exception as e:  # any failure of the download says the same thing to the user
            tried += f", and torchvision's download ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:100]})"
        finally:
            socket.setdefaulttimeout(before)
    raise MissingSetError(f"{name} not found (looked in {tried}); {HOW_TO_GET[name]} and pass it with --data-root")


def svhn(roots: list[Path], cache: Path, train: bool, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, 3, 32, 32], labels int64 [N] in 0..9) of SVHN's train or test split."""
    split = "train" if train else "test"
    ds = _found(lambda root, dl: datasets.SVHN(str(root), split=split, download=dl),
                roots, SVHN_FOLDERS, cache / "svhn", download, "svhn")
    return torch.from_numpy(ds.data).contiguous(), torch.from_numpy(ds.labels).long()


def celeba(roots: list[Path], cache: Path, train: bool, size: int,
           download: bool = True) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """(images uint8 [N, 3, size, size], attributes int64 [N, 40] in {0, 1}, their names) of
    CelebA's train or test split."""
    split = "train" if train else "test"
    ds = _found(lambda root, dl: datasets.CelebA(str(root), split=split, target_type="attr", download=dl),
                roots, CELEBA_ROOTS, cache, download, "celeba")
    folder = Path(ds.root) / ds.base_folder
    paths = [folder / "img_align_celeba" / name for name in ds.filename]
    images = image_folder.cached_decode(paths, size, cache / f"celeba-{split}-{size}.pt", f"decoding celeba {split}")
    names = tuple(n for n in ds.attr_names if n)  # the attribute file's header line ends in a space
    return images, ds.attr.long(), names
