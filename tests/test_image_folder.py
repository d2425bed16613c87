"""Folders of images: the layouts, grey and RGB, the centre crop, the cache, bad files, and a run
on a folder from the command line."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from fastinfo import classifier, data, evaluate, image_folder
from fastinfo.config import ConfigError, make_config


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def random_images(root, n, rgb=True, seed=0, layout="flat"):
    """n random images of odd sizes under root: flat, or in two class folders (ImageFolder)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = (int(v) for v in rng.integers(9, 41, 2))
        shape = (h, w, 3) if rgb else (h, w)
        sub = f"class{i % 2}/" if layout == "classes" else ""
        save(root / f"{sub}{i:03d}.png", rng.integers(0, 256, shape, dtype=np.uint8))


@pytest.fixture(autouse=True)
def _fresh_folders():
    data._folder_images.cache_clear()
    yield
    data._folder_images.cache_clear()


def test_grey_images_of_odd_sizes_become_their_centre_squares(tmp_path):
    """A 15x33 image whose centred 15x15 square is white and whose margins are black decodes to
    white; a 21x9 one the other way round likewise; the set stays grey."""
    wide = np.zeros((15, 33), np.uint8)
    wide[:, 9:24] = 255
    tall = np.zeros((21, 9), np.uint8)
    tall[6:15] = 255
    save(tmp_path / "wide.png", wide)
    save(tmp_path / "tall.bmp", tall)
    images = image_folder.load(tmp_path, 8, tmp_path / "cache")
    assert images.shape == (2, 1, 8, 8) and images.dtype == torch.uint8
    assert images.min() == 255


def test_rgb_and_grey_images_together_make_an_rgb_set_in_path_order(tmp_path):
    red = np.zeros((10, 10, 3), np.uint8)
    red[..., 0] = 200
    save(tmp_path / "b" / "red.jpg", red)
    save(tmp_path / "a" / "grey.png", np.full((12, 12), 90, np.uint8))
    rgba = np.zeros((6, 6, 4), np.uint8)
    rgba[..., 2], rgba[..., 3] = 255, 128
    save(tmp_path / "c" / "blue.PNG", rgba)  # transparency is dropped, the suffix's case ignored
    images = image_folder.load(tmp_path, 4, tmp_path / "cache")
    assert images.shape == (3, 3, 4, 4)
    assert (images[0] == 90).all()  # a/grey.png: the same value in every channel
    assert (images[1, 0] - 200).abs().max() <= 3 and images[1, 1:].max() <= 3  # b/red.jpg (JPEG's rounding)
    assert images[2, 2].min() == 255 and images[2, :2].max() == 0  # c/blue.PNG


def test_the_folder_is_decoded_once_and_again_when_a_file_changes(tmp_path, monkeypatch):
    random_images(tmp_path / "imgs", 5)
    first = image_folder.load(tmp_path / "imgs", 8, tmp_path / "cache")
    decode = image_folder.decode_all

    def not_again(*a, **k):
        raise AssertionError("decoded again from an unchanged folder")

    monkeypatch.setattr(image_folder, "decode_all", not_again)
    assert torch.equal(image_folder.load(tmp_path / "imgs", 8, tmp_path / "cache"), first)
    monkeypatch.setattr(image_folder, "decode_all", decode)
    assert image_folder.load(tmp_path / "imgs", 16, tmp_path / "cache").shape == (5, 3, 16, 16)  # its own file
    save(tmp_path / "imgs" / "000.png", np.zeros((9, 9, 3), np.uint8))
    changed = image_folder.load(tmp_path / "imgs", 8, tmp_path / "cache")
    assert changed[0].max() == 0 and torch.equal(changed[1:], first[1:])
    (cache,) = (tmp_path / "cache").glob("folder-*-8.pt")
    cache.write_bytes(cache.read_bytes()[:100])  # cut short: made again, not an error
    assert torch.equal(image_folder.load(tmp_path / "imgs", 8, tmp_path / "cache"), changed)


@pytest.mark.parametrize("make, msg", [
    (lambda root: None, "holds no image file"),
    (lambda root: (root / "notes.txt").write_text("no image"), "holds no image file"),
    (lambda root: (root / "sub" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg"),
     "broken.jpg is not a readable image"),
])
def test_empty_folders_and_unreadable_files_are_refused_naming_them(tmp_path, make, msg):
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    save(root / "good.png", np.zeros((5, 5), np.uint8))
    if "no image" in msg:
        (root / "good.png").unlink()
    make(root)
    with pytest.raises(image_folder.ImageFolderError, match=msg) as e:
        image_folder.load(root, 8, tmp_path / "cache")
    assert "\n" not in str(e.value)
    with pytest.raises(image_folder.ImageFolderError, match="is not a folder"):
        image_folder.load(tmp_path / "missing", 8, tmp_path / "cache")


def test_a_folder_splits_into_training_and_held_out_images(tmp_path):
    random_images(tmp_path, 30, layout="classes")
    cfg = make_config(dict(dataset="folder", data_root=str(tmp_path), image_size=28))
    train, labels = data.load_split(cfg, train=True)
    test, _ = data.load_split(cfg, train=False)
    assert train.shape == (27, 3, 28, 28) and test.shape == (3, 3, 28, 28) and data.channels(cfg) == 3
    assert (labels == data.UNLABELLED).all() and not data.labelled("folder")
    every = image_folder.load(tmp_path, 28, data.cache_dir())
    rows = {bytes(im.numpy()) for im in every}
    assert rows == {bytes(im.numpy()) for im in torch.cat([train, test])}
    assert torch.equal(data.load_split(cfg, train=False)[0], test)  # the same held-out images each time


@pytest.mark.parametrize("settings, msg", [
    ({}, "--dataset folder reads the images under --data-root"),
    ({"data_root": "x", "classes": "0,1"}, "folder has no classes"),
    ({"data_root": "x", "imbalance": 0.5}, "folder has none"),
])
def test_a_folder_run_needs_its_folder_and_has_no_classes(settings, msg):
    with pytest.raises(ConfigError, match=msg):
        make_config(dict(dataset="folder", **settings))


def test_a_grey_folder_trains_and_evaluates_from_the_command_line(tmp_path, monkeypatch):
    from tests.helpers import run

    random_images(tmp_path / "imgs", 40, rgb=False)
    monkeypatch.setattr(classifier, "load_or_train", lambda *a, **k: pytest.fail("a folder has no classifier"))
    assert run(tmp_path / "run", "--dataset", "folder", "--data-root", tmp_path / "imgs", "--steps", 2,
               "--no-eval-at-end") == 0
    assert evaluate.main([str(tmp_path / "run"), "--fid-samples", "16"]) == 0
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert result["c1_accuracy"] == "n/a (folder has no classes)" and 0 <= result["label_free_score"] <= np.log(10)
    assert "fid" not in result and "c1_purity" not in result and os.path.isfile(tmp_path / "run" / "traverse_c1.png")
