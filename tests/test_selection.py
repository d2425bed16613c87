"""The label-free scores that rank runs: known answers on assignments built by hand."""

import math

import numpy as np
import pytest
import torch

from fastinfo import data, selection


def one_hot(assignments, k, confidence=1.0):
    """Q's distributions putting `confidence` on each assigned category and the rest evenly."""
    probs = np.full((len(assignments), k), (1 - confidence) / (k - 1))
    probs[np.arange(len(assignments)), assignments] = confidence
    return probs


def test_information_score_of_known_assignments():
    k = 10
    balanced = np.arange(1000) % k
    assert selection.information_score(one_hot(balanced, k)) == pytest.approx(math.log(k))
    # every image in one category, or no confidence anywhere: no information
    assert selection.information_score(one_hot(np.zeros(1000, int), k)) == pytest.approx(0.0, abs=1e-12)
    assert selection.information_score(np.full((1000, k), 1 / k)) == pytest.approx(0.0, abs=1e-12)
    # two digits merged into one category (and one unused): 8 categories of 1/10, one of 2/10
    merged = np.where(balanced == 9, 8, balanced)
    want = -(8 * 0.1 * math.log(0.1) + 0.2 * math.log(0.2))
    assert selection.information_score(one_hot(merged, k)) == pytest.approx(want)
    # less confident assignments score lower, by the mean entropy of one distribution
    p = one_hot(balanced, k, confidence=0.7)
    row_entropy = -(0.7 * math.log(0.7) + 0.3 * math.log(0.3 / 9))
    assert selection.information_score(p) == pytest.approx(math.log(k) - row_entropy)
    random = np.random.default_rng().dirichlet(np.full(k, 0.3), size=500)
    assert 0 <= selection.information_score(random) <= math.log(k)


def test_label_free_score_reads_training_images_and_no_labels(monkeypatch):
    from fastinfo.codes import LatentSpec

    images = torch.zeros(50, 28, 28, dtype=torch.uint8)
    images[:, 0, 0] = torch.arange(50) % 5 * 60  # five kinds of image, ten of each
    asked = []

    def load(dataset, train=True, data_root=None, size=None):
        asked.append(train)
        return images, None  # no labels to read

    class ReadsThePixel:  # Q puts the image's kind in its category, confidently
        spec, device = LatentSpec(cat_sizes=(5,)), torch.device("cpu")

        def predict_codes(self, x):
            kind = ((x[:, 0, 0, 0] + 1) / 2 * 255 / 60).round().long()
            return torch.nn.functional.one_hot(kind, 5).float() * 50, torch.zeros(len(x), 0)

    monkeypatch.setattr(data, "load", load)
    cfg = type("Cfg", (), {"dataset": "mnist", "data_root": None, "classes": "all", "imbalance": 1.0,
                           "image_size": 0})
    result = selection.label_free_score(ReadsThePixel(), cfg)
    assert asked == [True]
    assert result == {"label_free_score": pytest.approx(math.log(5)), "label_free_score_max": math.log(5)}


def test_agreement_ranks_the_runs_that_agree_with_the_others_first():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, 2000)
    relabelled = rng.permutation(10)[truth]  # the same clusters under other names
    merged = np.where(truth == 9, 4, truth)  # 4 and 9 merged
    noise = rng.integers(0, 10, 2000)
    scores = selection.agreement({"a": truth, "b": relabelled, "merged": merged, "noise": noise})
    assert scores["a"] == pytest.approx(scores["b"])
    assert scores["a"] > scores["merged"] > scores["noise"]
    # a against b alone: the same clustering, ARI 1
    assert selection.agreement({"a": truth, "b": relabelled}) == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}
    with pytest.raises(ValueError, match="two runs or more"):
        selection.agreement({"a": truth})
