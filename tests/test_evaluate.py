import json

import numpy as np
import pytest
import torch

from fastinfo import data, evaluate
from fastinfo.evaluate import cluster_accuracy, clustering_scores


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
    from tests.test_train import run

    g = torch.Generator().manual_seed(0)
    monkeypatch.setattr(data, "load", lambda *a, **k: (
        torch.randint(0, 256, (32, 28, 28), dtype=torch.uint8, generator=g), torch.arange(32) % 10))
    assert run(tmp_path, "--steps", 2, "--no-eval-at-end") == 0
    assert evaluate.main([str(tmp_path)]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["step"] == 2 and 0 <= result["c1_accuracy"] <= 1
    assert evaluate.main([str(tmp_path / "missing")]) == 2
    assert "holds no run" in capsys.readouterr().err
