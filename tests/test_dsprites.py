"""dSprites: the published factor grid and order, the rendering, DeepMind's file, and a run."""

import json
import math

import numpy as np
import pytest
import torch

from fastinfo import classifier, data, dsprites, evaluate

SMALL_GRID = {"shape": 3, "scale": 2, "orientation": 3, "x": 4, "y": 5}


@pytest.fixture
def small_dsprites(monkeypatch):
    """dSprites on SMALL_GRID (360 images, 30 held out), nothing cached from another test."""
    monkeypatch.setattr(dsprites, "GRID", SMALL_GRID)
    monkeypatch.setattr(dsprites, "TEST_IMAGES", 30)
    data._all_dsprites.cache_clear()
    yield
    data._all_dsprites.cache_clear()


def test_factors_take_the_published_values_in_the_published_order():
    values = dsprites.factor_values()
    assert values.shape == (737280, 5) and math.prod(dsprites.GRID.values()) == 737280
    # y varies fastest, then x, orientation, scale and shape
    index = (((2 * 6 + 3) * 40 + 39) * 32 + 5) * 32 + 31
    shape, scale, angle, x, y = values[index].tolist()
    assert shape == 2 and scale == pytest.approx(0.5 + 3 * 0.1) and angle == pytest.approx(2 * math.pi)
    assert x == pytest.approx(5 / 31) and y == pytest.approx(1.0)
    for k, n in enumerate(dsprites.GRID.values()):
        assert len(values[:, k].unique()) == n
    assert values[:, 1].min() == 0.5 and values[:, 1].max() == 1.0 and values[:, 2].min() == 0


def test_rendering_is_deterministic_binary_and_moves_one_pixel_a_position_step():
    images = dsprites.render(SMALL_GRID).reshape(3, 2, 3, 4, 5, 64, 64)
    assert torch.equal(images, dsprites.render(SMALL_GRID).reshape(images.shape))
    assert set(images.unique().tolist()) == {0, 255}
    base = images[1, 1, 1, 0, 0]
    for x in range(4):
        for y in range(5):
            assert torch.equal(images[1, 1, 1, x, y], torch.roll(base, (y, x), (0, 1)))
    # a sprite never leaves the frame: at the last position nothing has wrapped round
    grid = {**dsprites.GRID, "shape": 3, "scale": 1, "orientation": 1}
    assert dsprites.render(grid).reshape(3, 32, 32, 64, 64)[:, 0, 0, 0, :].sum() == 0
    # orientation 0 and 2 pi draw the same image, as in the official file; so does pi, for the
    # square and the ellipse, which a half turn maps onto themselves; the other images differ
    assert torch.equal(images[2, 1, 0], images[2, 1, 2])
    assert torch.equal(images[:2, :, 0], images[:2, :, 1]) and not torch.equal(images[2, :, 0], images[2, :, 1])
    distinct = {bytes(im.numpy()) for im in images[:, :, 0].reshape(-1, 64, 64)} | {
        bytes(im.numpy()) for im in images[2, :, 1].reshape(-1, 64, 64)}
    assert len(distinct) == 3 * 2 * 4 * 5 + 2 * 4 * 5


def test_the_shapes_are_told_apart_and_grow_with_scale():
    images = dsprites.render({**SMALL_GRID, "orientation": 1, "x": 1, "y": 1}).reshape(3, 2, 64, 64)
    area = images.float().sum((-1, -2)) / 255
    assert (area[:, 1] > 3 * area[:, 0]).all()  # scale 1 against 0.5: four times the area, near enough
    assert len({bytes(im.numpy()) for im in images[:, 1]}) == 3


def test_the_data_module_serves_dsprites_with_a_fixed_held_out_sample(small_dsprites):
    images, labels = data.load("dsprites", train=True)
    assert images.shape == (360, 64, 64) and labels.tolist() == [k // 120 for k in range(360)]
    test_images, test_labels = data.load("dsprites", train=False)
    assert test_images.shape == (30, 64, 64) and data.n_classes("dsprites") == 3
    idx = dsprites.held_out_indices(360)
    assert torch.equal(test_images, images[idx]) and torch.equal(test_labels, labels[idx])
    cfg = type("Cfg", (), {"dataset": "dsprites", "data_root": None, "classes": "0,2", "imbalance": 1.0,
                           "image_size": 0})
    kept, kept_labels = data.load_split(cfg, train=False)
    factors = data.known_factors(cfg, train=False)
    assert set(kept_labels.tolist()) <= {0, 2} and factors.shape == (len(kept), 5)
    assert torch.equal(factors[:, 0].long(), kept_labels)


def write_official(path, n, imgs=None, latents=None):
    values = dsprites.factor_values()
    latents = np.concatenate([np.ones((n, 1)), values[:, :1] + 1, values[:, 1:]], 1) if latents is None else latents
    imgs = (dsprites.render().numpy() // 255).astype(np.uint8) if imgs is None else imgs
    np.savez_compressed(path, imgs=imgs, latents_values=latents, latents_classes=np.zeros((n, 6), np.int64))


def test_deepminds_file_is_read_where_a_data_folder_holds_it(small_dsprites, tmp_path):
    write_official(tmp_path / dsprites.FILE, 360)
    # the file's images flipped, so that reading them is told from rendering them
    with np.load(tmp_path / dsprites.FILE) as npz:
        flipped = {k: npz[k] for k in npz.files}
    flipped["imgs"] = flipped["imgs"][:, ::-1].copy()
    np.savez_compressed(tmp_path / dsprites.FILE, **flipped)
    images, labels = data.load("dsprites", train=True, data_root=tmp_path)
    assert torch.equal(images, dsprites.render().flip(1)) and labels.tolist() == [k // 120 for k in range(360)]


@pytest.mark.parametrize("content, msg", [
    (dict(imgs=np.zeros((5, 64, 64), np.uint8), latents_values=np.zeros((5, 6))),
     r"holds images \(5, 64, 64\) and factors \(5, 6\), expected \(360, 64, 64\) and \(360, 6\)"),
    (dict(images=np.zeros(3)), "holds images, not dSprites' imgs and latents_values"),
])
def test_a_file_that_is_not_dsprites_is_refused_naming_it(small_dsprites, tmp_path, content, msg):
    (tmp_path / "dsprites").mkdir()
    np.savez(tmp_path / "dsprites" / dsprites.FILE, **content)
    with pytest.raises(data.DataError, match=msg) as e:
        data.load("dsprites", data_root=tmp_path)
    assert str(e.value).startswith(f"{tmp_path / 'dsprites' / dsprites.FILE} is not dSprites' file (it holds ")
    assert str(e.value).endswith("; replace it, or remove it to train on the rendered set")


def test_a_dsprites_run_trains_and_is_scored_against_its_factors(small_dsprites, tmp_path, monkeypatch):
    from tests.helpers import run

    assert run(tmp_path, "--dataset", "dsprites", "--steps", 2, "--cat-sizes", 3, "--n-cont", 4,
               "--no-eval-at-end") == 0
    monkeypatch.setattr(classifier, "load_or_train", lambda *a, **k: (classifier.Classifier(), 0.5))
    assert evaluate.main([str(tmp_path), "--fid-samples", "16"]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert set(result["factor_code"]) == set(dsprites.FACTORS) and 0 <= result["mig"] <= 1
    assert set(result["code_factor_information"]) == {"c1", "c2", "c3", "c4", "c5"}
    assert result["factorvae_score"].startswith("n/a") and 0 <= result["c1_accuracy"] <= 1
