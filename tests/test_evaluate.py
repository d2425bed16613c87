import json
import math
import shutil
import warnings

import numpy as np
import pytest
import torch

from fastinfo import classifier, data, evaluate
from fastinfo.evaluate import cluster_accuracy, clustering_scores
from fastinfo.runs import load_run


def test_perfect_clustering_under_any_relabelling():
    labels = np.random.default_rng().integers(0, 10, 1000)
    perm = np.random.default_rng().permutation(10)
    scores = clustering_scores(perm[labels], labels)
    assert scores["c1_accuracy"] == 1.0
    assert scores["c1_nmi"] == pytest.approx(1.0) and scores["c1_ari"] == pytest.approx(1.0)


def test_random_clustering_is_near_chance():
    rng = np.random.default_rng()
    labels, pred = rng.integers(0, 10, 20000), rng.integers(0, 10, 20000)
    scores = clustering_scores(pred, labels)
    assert 0.09 < scores["c1_accuracy"] < 0.13 and scores["c1_nmi"] < 0.01 and abs(scores["c1_ari"]) < 0.01


def test_hand_computed_assignment():
    # clusters 0->label 1 (3 right), 1->label 0 (2 right), one mistake: 5/6
    pred = np.array([0, 0, 0, 1, 1, 1])
    labels = np.array([1, 1, 1, 0, 0, 1])
    assert cluster_accuracy(pred, labels) == pytest.approx(5 / 6)


def test_evaluate_cli_on_saved_run(tmp_path, monkeypatch, capsys):
    from tests.helpers import run

    g = torch.Generator().manual_seed(0)
    monkeypatch.setattr(data, "load", lambda *a, **k: (
        torch.randint(0, 256, (32, 28, 28), dtype=torch.uint8, generator=g), torch.arange(32) % 10))
    assert run(tmp_path, "--steps", 2, "--no-eval-at-end") == 0
    assert evaluate.main([str(tmp_path), "--quick"]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["step"] == 2 and 0 <= result["c1_accuracy"] <= 1 and "fid" not in result
    assert 0 <= result["label_free_score"] <= result["label_free_score_max"] == pytest.approx(math.log(10))
    assert result["failed"] is False
    monkeypatch.setattr(classifier, "load_or_train", lambda *a, **k: (classifier.Classifier(), 0.5))
    assert evaluate.main([str(tmp_path), "--fid-samples", "200"]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["fid"] >= 0 and 0 <= result["disentanglement"] <= 1
    assert set(result["code_measure_spearman"]) == {"c2", "c3"}
    assert set(result["information"]) == {"c1", "c2", "c3"} and result["information"]["c1"]["H"] == pytest.approx(
        math.log(10))
    (tmp_path / "eval.json").unlink()
    assert evaluate.main([str(tmp_path / "missing"), str(tmp_path), "--quick"]) == 2
    err = capsys.readouterr().err
    assert "holds no run" in err and f"1 of 2 runs not evaluated: {tmp_path / 'missing'}" in err
    assert json.loads((tmp_path / "eval.json").read_text())["step"] == 2  # the good run after the bad one
    # a run named twice is evaluated once; a folder of runs names them
    assert evaluate.main([str(tmp_path), f"{tmp_path}/", "--quick"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    # a folder holding this run alone (pytest's own parent folder holds the session's other runs)
    alone = tmp_path.parent / f"{tmp_path.name}-folder"
    (alone / "run").mkdir(parents=True)
    shutil.copy(tmp_path / "config.json", alone / "run" / "config.json")
    assert evaluate.main([str(alone), "--quick"]) == 2
    assert f"holds no run (no config.json); the runs in it: {alone / 'run'}" in capsys.readouterr().err
    for device, msg in [("gpu", "unknown --device 'gpu'"), ("mps", "unknown --device 'mps'"),
                        (f"cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 0}", "GPU")]:
        assert evaluate.main([str(tmp_path), "--quick", "--device", device]) == 2
        assert msg in capsys.readouterr().err


def test_evaluate_interrupted_names_the_runs_left_and_keeps_those_done(tmp_path, monkeypatch, capsys):
    from tests.helpers import run

    monkeypatch.setattr(data, "load", lambda *a, **k: (torch.zeros(32, 28, 28, dtype=torch.uint8),
                                                       torch.arange(32) % 10))
    assert run(tmp_path / "a", "--steps", 2, "--no-eval-at-end") == 0
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.copytree(tmp_path / "a", tmp_path / "c")
    evaluate_model = evaluate.evaluate_model

    def interrupted_at_b(model, cfg, *args, run=None, **kwargs):
        if run.name == "b":
            raise KeyboardInterrupt
        return evaluate_model(model, cfg, *args, run=run, **kwargs)

    monkeypatch.setattr(evaluate, "evaluate_model", interrupted_at_b)
    runs = [str(tmp_path / name) for name in "abc"]
    assert evaluate.main([*runs, "--quick"]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"interrupted: not evaluated: {runs[1]}, {runs[2]}; evaluated, each in its eval.json: {runs[0]}")
    assert [(tmp_path / name / "eval.json").is_file() for name in "abc"] == [True, False, False]


def test_frechet_distance_known_values():
    rng = np.random.default_rng()
    a = rng.normal(size=(4000, 3))
    assert evaluate.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # same covariance, means 2 apart along one axis: distance = 2^2
    assert evaluate.frechet_distance(a, a + np.array([2.0, 0, 0])) == pytest.approx(4.0, rel=1e-6)
    # N(0, I) vs N(0, 4I) in 3-D: 3 * (1 + 4 - 2 * 2) = 3
    b = rng.normal(size=(200000, 3))
    assert evaluate.frechet_distance(b, 2 * rng.normal(size=(200000, 3))) == pytest.approx(3.0, rel=0.03)


def test_frechet_distance_of_singular_covariances():
    """Features that never vary (dead units; a collapsed generator's samples) make singular
    covariances: the distance stays finite and right, with no warning."""
    rng = np.random.default_rng()
    a = np.zeros((5000, 6))
    a[:, :3] = rng.normal(size=(5000, 3))  # three dead features
    b = a.copy()
    b[:, :3] *= 2.0
    b[:, 5] = 1.5  # a dead feature at another value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluate.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
        # C_b = 4 C_a: tr C_a + tr 4 C_a - 2 tr 2 C_a = tr C_a (~3), plus the means' distance (~1.5^2)
        want = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(np.cov(a, rowvar=False))
        assert evaluate.frechet_distance(a, b) == pytest.approx(want, rel=1e-9)
        collapsed = np.tile(rng.normal(size=(1, 6)), (4000, 1))  # one sample repeated: covariance 0
        want = ((a.mean(0) - collapsed[0]) ** 2).sum() + np.trace(np.cov(a, rowvar=False))
        assert evaluate.frechet_distance(a, collapsed) == pytest.approx(want, rel=1e-9)


def test_continuous_scores_of_a_generator_with_known_factors():
    """c2 sets stroke thickness, c3 sets slant: the matrix and the score must say so."""
    import torch

    from fastinfo.codes import LatentSpec

    class Factored:
        spec, device = LatentSpec(noise_dim=2), torch.device("cpu")

        def generate(self, z, cat, cont):
            images = -torch.ones(len(z), 1, 28, 28)
            for i, (thick, shear) in enumerate(cont.tolist()):
                half = int(round(2 + thick))  # thickness 2 * (2 + c2) +- 1 pixels
                for r in range(4, 24):
                    c = 14 + int(round(shear * 0.2 * (14 - r)))
                    images[i, 0, r, max(c - half, 0) : c + half] = 1
            return images

    scores = evaluate.continuous_code_scores(Factored(), n_rows=4, n_values=9)
    rho = scores["code_measure_spearman"]
    assert rho["c2"]["thickness"] > 0.9 and abs(rho["c2"]["slant"]) < 0.3
    assert rho["c3"]["slant"] > 0.9 and abs(rho["c3"]["thickness"]) < 0.3
    assert scores["disentanglement"] > 0.6


def test_information_of_a_run_killed_during_a_metrics_append(tmp_path):
    from fastinfo.codes import LatentSpec

    spec = LatentSpec(4, (10,), 1, "normal")
    rows = [{"step": s, "info_c1": 2.0, "info_c2": 0.5} for s in range(1, 21)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 21, "info_')
    info = evaluate.final_information(tmp_path, spec)
    assert info["c1"] == {"L_I": 2.0, "H": pytest.approx(math.log(10))} and info["c2"]["L_I"] == 0.5


def test_a_run_at_another_image_size_trains_and_evaluates(tmp_path, synthetic_mnist):
    from tests.helpers import run

    assert run(tmp_path, "--steps", 2, "--image-size", 32, "--no-eval-at-end") == 0
    cfg, model, _ = load_run(tmp_path)
    images, labels = data.load_split(cfg, train=False)
    assert images.shape == (64, 32, 32) and images.dtype == torch.uint8 and len(labels) == 64
    assert model.generate(*model.spec.sample(3, model.device, torch.Generator())).shape == (3, 1, 32, 32)
    # the classifier takes the data set's own 28x28 images: it judges a 32x32 one resized back
    clf = classifier.Classifier().eval()
    big = torch.rand(4, 1, 32, 32) * 2 - 1
    small = torch.nn.functional.interpolate(big, size=(28, 28), mode="bilinear", antialias=True)
    torch.testing.assert_close(clf.features(big), clf.features(small))
    result = evaluate.evaluate_model(model, cfg, clf, samples_per_value=4, full=True, fid_samples=32)
    assert 0 <= result["c1_accuracy"] <= 1 and result["fid"] >= 0
    assert set(result["code_measure_spearman"]) == {"c2", "c3"}
