"""SVHN and CelebA through torchvision's classes, on small copies in their published layouts
(torchvision's checks of the published files' MD5 sums pass where the files exist)."""

import json
import os

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torchvision import datasets

from fastinfo import classifier, data, evaluate, torchvision_sets
from fastinfo.config import make_config

CELEBA_ATTRIBUTES = ("Bald", "Eyeglasses", "Smiling")


@pytest.fixture
def svhn(tmp_path, monkeypatch):
    """A folder holding SVHN's two .mat files: 200 and 20 images, the digit 0 labelled 10 as in
    the published files. Returns (folder, {split: (X [32, 32, 3, N], y [N, 1])})."""
    monkeypatch.setattr(datasets.SVHN, "_check_integrity",
                        lambda self: os.path.isfile(os.path.join(self.root, self.filename)))
    rng, published = np.random.default_rng(0), {}
    (tmp_path / "svhn").mkdir()
    for split, n in (("train", 200), ("test", 20)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
        scipy.io.savemat(tmp_path / "svhn" / f"{split}_32x32.mat", {"X": x, "y": y})
        published[split] = (x, y)
    return tmp_path / "svhn", published


def test_svhn_is_read_as_rgb_with_zero_labelled_zero(svhn):
    folder, published = svhn
    images, labels = data.load("svhn", train=False, data_root=folder.parent)  # found in ROOT/svhn
    x, y = published["test"]
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(images[3, 1], torch.from_numpy(x[:, :, 1, 3]))  # channel 1 of image 3
    assert torch.equal(labels, torch.from_numpy(y[:, 0] % 10).long())


def test_a_missing_set_says_in_one_line_how_to_get_it(tmp_path):
    for name, file in (("svhn", "train_32x32.mat"), ("celeba", "img_align_celeba/")):
        with pytest.raises(torchvision_sets.MissingSetError) as e:
            getattr(torchvision_sets, name)([tmp_path], tmp_path / "cache", True, *([32] if name == "celeba" else []),
                                            download=False)
        assert file in str(e.value) and "--data-root" in str(e.value) and "\n" not in str(e.value)


def test_an_svhn_run_trains_on_rgb_and_is_judged_by_an_rgb_classifier(svhn, tmp_path):
    from tests.helpers import run

    folder, _ = svhn
    assert run(tmp_path / "run", "--dataset", "svhn", "--data-root", folder, "--steps", 2, "--no-eval-at-end") == 0
    clf, accuracy = classifier.load_or_train("svhn", "cpu", str(folder))
    assert clf.body[0].in_channels == 3 and 0 <= accuracy <= 1
    assert evaluate.main([str(tmp_path / "run"), "--fid-samples", "16"]) == 0
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert 0 <= result["c1_accuracy"] <= 1 and 0 <= result["c1_purity"] <= 1 and result["fid"] >= 0
    # the classifier cached above is the one read back, with its three channels
    assert classifier.load_or_train("svhn", "cpu")[1] == accuracy


@pytest.fixture
def celeba(tmp_path, monkeypatch):
    """CelebA's layout with 30 faces of 18x22 (the published 178x218's shape): 16 train, 2 valid,
    12 test, and three attributes. Returns (root, attributes [30, 3] in {-1, 1})."""
    monkeypatch.setattr(datasets.CelebA, "_check_integrity",
                        lambda self: os.path.isdir(os.path.join(self.root, self.base_folder, "img_align_celeba")))
    folder, rng = tmp_path / "celeba", np.random.default_rng(0)
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, 31)]
    for name in names:
        Image.fromarray(rng.integers(0, 256, (22, 18, 3), dtype=np.uint8)).save(folder / "img_align_celeba" / name)
    attributes = rng.choice([-1, 1], (30, len(CELEBA_ATTRIBUTES)))
    split = [0] * 16 + [1] * 2 + [2] * 12
    lines = {
        "list_eval_partition.txt": [f"{n} {s}" for n, s in zip(names, split)],
        "identity_CelebA.txt": [f"{n} {i}" for i, n in enumerate(names)],
        "list_attr_celeba.txt": ["30", " ".join(CELEBA_ATTRIBUTES) + " "]
                                + [f"{n} " + " ".join(f"{a:2d}" for a in row) for n, row in zip(names, attributes)],
        "list_bbox_celeba.txt": ["30", "image_id x_1 y_1 width height"] + [f"{n} 1 2 3 4" for n in names],
        "list_landmarks_align_celeba.txt": ["30", " ".join(f"p{k}" for k in range(10))]
                                           + [f"{n} " + " ".join(["5"] * 10) for n in names],
    }
    for file, rows in lines.items():
        (folder / file).write_text("\n".join(rows) + "\n")
    data._celeba.cache_clear()
    yield tmp_path, attributes
    data._celeba.cache_clear()


def test_celeba_splits_and_attributes_are_read_as_published(celeba):
    root, attributes = celeba
    cfg = make_config(dict(dataset="celeba", data_root=str(root)))
    train, labels = data.load_split(cfg, train=True)
    test, _ = data.load_split(cfg, train=False)
    assert train.shape == (16, 3, 32, 32) and test.shape == (12, 3, 32, 32) and data.channels(cfg) == 3
    assert (labels == data.UNLABELLED).all() and data.factor_names(cfg) == CELEBA_ATTRIBUTES
    assert torch.equal(data.known_factors(cfg, train=False), torch.from_numpy((attributes[18:] + 1) // 2))
    # the celeba folder itself may be named too
    data._celeba.cache_clear()
    assert torch.equal(data.load("celeba", train=False, data_root=root / "celeba")[0], test)


def test_a_celeba_run_is_scored_against_the_attributes(celeba, tmp_path, monkeypatch):
    from tests.helpers import run

    root, _ = celeba
    monkeypatch.setattr(classifier, "load_or_train", lambda *a, **k: pytest.fail("celeba has no classifier"))
    assert run(tmp_path / "run", "--dataset", "celeba", "--data-root", root, "--steps", 2, "--no-eval-at-end") == 0
    assert evaluate.main([str(tmp_path / "run"), "--fid-samples", "16"]) == 0
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert set(result["factor_code"]) == set(CELEBA_ATTRIBUTES) and 0 <= result["mig"] <= 1
    assert result["c1_accuracy"] == "n/a (celeba has no classes)"
