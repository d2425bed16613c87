import json
import math

import pytest
import torch

from fastinfo import checkpoint, data, shapes


def centroid_and_cov(image: torch.Tensor):
    """Mass centroid (x, y) in pixels from the image centre (y down) and the 2x2 covariance."""
    w = image.double() / image.double().sum()
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    xs, ys = xs.double() + 0.5 - 14, ys.double() + 0.5 - 14
    cx, cy = (w * xs).sum(), (w * ys).sum()
    cov = torch.stack([torch.stack([(w * (xs - cx) ** 2).sum(), (w * (xs - cx) * (ys - cy)).sum()]),
                       torch.stack([(w * (xs - cx) * (ys - cy)).sum(), (w * (ys - cy) ** 2).sum()])])
    return float(cx), float(cy), cov


def one(shape: int, scale=0.0, rotation=0.0, x=0.0, y=0.0) -> torch.Tensor:
    return shapes.render(torch.tensor([shape]), torch.tensor([[scale, rotation, x, y]]))[0]


def test_generation_is_deterministic_and_seeded():
    a, b = shapes.generate(40, seed=3), shapes.generate(40, seed=3)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], shapes.generate(40, seed=4)[0])
    images, labels, factors = a
    assert images.dtype == torch.uint8 and images.shape == (40, 28, 28)
    assert set(labels.tolist()) == {0, 1, 2} and factors.shape == (40, 4)
    assert factors.min() >= -1 and factors.max() <= 1
    # anti-aliased edges: grey values between black and white
    assert ((images > 0) & (images < 255)).any()


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_position_factors_move_the_shape_where_they_say(shape):
    for x, y in ((-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0)):
        cx, cy, _ = centroid_and_cov(one(shape, x=x, y=y))
        centred_x, centred_y, _ = centroid_and_cov(one(shape))
        assert cx - centred_x == pytest.approx(4 * x, abs=0.15)  # [-1, 1] -> [-4, 4] pixels, x right
        assert cy - centred_y == pytest.approx(4 * y, abs=0.15)  # y down
    # the largest shape at the largest offset, turned 45 degrees, stays inside the image
    corner = one(shape, scale=1, rotation=1, x=1, y=1)
    assert corner[0].sum() == 0 and corner[:, 0].sum() == 0 and corner[-1].sum() == 0 and corner[:, -1].sum() == 0


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_scale_factor_scales_the_area(shape):
    small, large = (one(shape, scale=s).double().sum() / 255 for s in (-1.0, 1.0))
    assert large / small == pytest.approx((7 / 4) ** 2, rel=0.05)  # half-size 4 -> 7 pixels


def test_rotation_factor_turns_the_ellipse_counter_clockwise():
    _, _, flat = centroid_and_cov(one(1))
    assert flat[0, 0] > 2 * flat[1, 1]  # unrotated: its long axis is horizontal
    _, _, turned = centroid_and_cov(one(1, rotation=1.0))  # +45 degrees: long axis up and right
    assert turned[0, 1] < -0.5 * turned[0, 0]  # y grows downwards: up-right is x up, y down
    _, _, back = centroid_and_cov(one(1, rotation=-1.0))
    assert back[0, 1] > 0.5 * back[0, 0]


def test_shapes_differ_as_named():
    square, ellipse, heart = (one(k).double() / 255 for k in range(3))
    assert square.sum() > ellipse.sum()  # a square of half-size 0.85 vs an ellipse of axes 1 x 0.55
    _, cy, _ = centroid_and_cov(heart)
    assert cy < -0.2  # upright: the two lobes on top hold more ink than the point below
    assert math.isclose(centroid_and_cov(square)[1], 0.0, abs_tol=0.05)


def test_splits_are_cached_verified_and_rendered_again_when_damaged(tmp_path, monkeypatch):
    monkeypatch.setattr(shapes, "SPLIT_SIZES", {True: 30, False: 20})
    images, labels, factors = shapes.load(tmp_path, train=False)
    cached = tmp_path / f"shapes-v{shapes.VERSION}-test.pt"
    assert cached.is_file() and len(images) == 20

    def no_rendering(n, seed):
        raise AssertionError("a cached split is read, not rendered")

    with monkeypatch.context() as m:
        m.setattr(shapes, "generate", no_rendering)
        again = shapes.load(tmp_path, train=False)
    assert all(torch.equal(u, v) for u, v in zip(again, (images, labels, factors)))
    raw = bytearray(cached.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte in the middle of the archive
    cached.write_bytes(bytes(raw))
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.verify(cached)
    assert torch.equal(shapes.load(tmp_path, train=False)[0], images)
    checkpoint.verify(cached)  # written again whole


def test_the_data_module_serves_the_shapes_set(monkeypatch):
    monkeypatch.setattr(shapes, "SPLIT_SIZES", {True: 30, False: 20})
    images, labels = data.load("shapes", train=True)
    assert images.shape == (30, 28, 28) and data.n_classes("shapes") == 3
    cfg = type("Cfg", (), {"dataset": "shapes", "data_root": None, "classes": "0,2", "imbalance": 1.0,
                         "image_size": 0})
    kept, kept_labels = data.load_split(cfg, train=False)
    factors = data.known_factors(cfg, train=False)
    assert set(kept_labels.tolist()) <= {0, 2} and len(factors) == len(kept)
    all_images, all_labels, all_factors = shapes.load(data.cache_dir(), train=False)
    keep = (all_labels == 0) | (all_labels == 2)
    assert torch.equal(factors, all_factors[keep]) and torch.equal(kept, all_images[keep])


def test_a_shapes_run_is_evaluated_against_its_factors(tmp_path, monkeypatch):
    from fastinfo import classifier, evaluate
    from tests.helpers import run

    monkeypatch.setattr(shapes, "SPLIT_SIZES", {True: 64, False: 300})
    assert run(tmp_path, "--dataset", "shapes", "--n-cont", "3", "--steps", 2, "--no-eval-at-end") == 0
    monkeypatch.setattr(classifier, "load_or_train", lambda *a, **k: (classifier.Classifier(), 0.5))
    assert evaluate.main([str(tmp_path), "--fid-samples", "100"]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert set(result["factor_code"]) == set(shapes.FACTORS)
    assert set(result["factor_code"].values()) <= {"c2", "c3", "c4"}
    for key in ("mig", "factorvae_score", "dci_disentanglement", "dci_completeness"):
        assert 0 <= result[key] <= 1, key
    assert result["dci_informativeness"] <= 1
    monkeypatch.setattr(shapes, "SPLIT_SIZES", {True: 64, False: 100})
    monkeypatch.setattr(data, "cache_dir", lambda: tmp_path / "small-cache")
    assert evaluate.main([str(tmp_path), "--fid-samples", "100"]) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["factorvae_score"] == "n/a (fewer than 128 test images)"
