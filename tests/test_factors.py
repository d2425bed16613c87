import math

import numpy as np
import pytest
import torch

from fastinfo import evaluate, factors, runs, train
from fastinfo.codes import LatentSpec


@pytest.fixture
def uniform_factors():
    return np.random.default_rng(0).uniform(-1, 1, size=(6000, 3))


def test_mig_is_one_when_each_factor_has_a_code_of_its_own(uniform_factors):
    f = uniform_factors
    codes = np.c_[f[:, 2] * 3 + 1, f[:, 0], -f[:, 1]]  # permuted, scaled, shifted, flipped
    result = factors.mutual_information_gap(codes, f)
    assert result["mig"] == pytest.approx(1.0, abs=0.02)
    assert np.argmax(result["mutual_information"], axis=0).tolist() == [1, 2, 0]


def test_mig_is_zero_for_a_factor_two_codes_share_or_none_carries(uniform_factors):
    f = uniform_factors
    shared = factors.mutual_information_gap(np.c_[f[:, 0], f[:, 0], f[:, 1], f[:, 2]], f)
    assert shared["per_factor"][0] == pytest.approx(0.0, abs=1e-12)
    assert shared["per_factor"][1:] == pytest.approx([1.0, 1.0], abs=0.02)
    noise = factors.mutual_information_gap(np.random.default_rng(1).normal(size=(6000, 3)), f)
    assert noise["mig"] < 0.02


def test_mig_of_a_code_that_keeps_one_bit_of_a_factor(uniform_factors):
    """A code that says only on which side of its median a factor lies carries ln 2 nats of it;
    the factor, binned in 20 equal-count bins, has ln 20: a gap of ln 2 / ln 20."""
    f = uniform_factors[:, :1]
    bit = (f[:, 0] > np.median(f[:, 0])).astype(float)
    result = factors.mutual_information_gap(bit[:, None], f)
    assert result["factor_entropy"][0] == pytest.approx(math.log(20), abs=1e-9)
    assert result["mig"] == pytest.approx(math.log(2) / math.log(20), abs=1e-3)


def test_mig_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="same N"):
        factors.mutual_information_gap(np.zeros((10, 2)), np.zeros((9, 2)))
    with pytest.raises(ValueError, match="J >= 1"):
        factors.mutual_information_gap(np.zeros((10, 0)), np.zeros((10, 2)))


def test_traversal_change_sees_the_codes_the_generator_uses():
    class MovesWithTheFirstCode:
        spec = LatentSpec(cat_sizes=(10,), n_cont=3)
        device = torch.device("cpu")

        def generate(self, z, cat, cont):
            # pixels in [-1, 1]: a bar whose brightness follows c2 (the first continuous code)
            image = -torch.ones(len(z), 1, 28, 28)
            image[:, :, 10:14] = cont[:, 0].view(-1, 1, 1, 1).clamp(-1, 1)
            return image

    change = factors.traversal_change(MovesWithTheFirstCode(), n_rows=8)
    # c2 from -1 to 1 moves 4 of 28 rows across the full range: 4/28 of the pixels change by 1
    assert change == pytest.approx([4 / 28, 0.0, 0.0])


def test_factor_scores_name_the_code_that_carries_each_factor():
    known = torch.rand(3000, 4) * 2 - 1

    class ReadsTheFactors:
        spec = runs.latent_spec(train.make_config({"n_cont": 5}))
        device = torch.device("cpu")
        seen = 0

        def predict_codes(self, x):
            rows = known[self.seen : self.seen + len(x)]
            self.seen += len(x)
            # c2..c6: rotation, scale, y, noise, x
            means = torch.stack([rows[:, 1], rows[:, 0], rows[:, 3], torch.randn(len(x)), rows[:, 2]], 1)
            return torch.zeros(len(x), 10), means

    images = torch.zeros(3000, 28, 28, dtype=torch.uint8)
    scores = evaluate.factor_scores(ReadsTheFactors(), images, known, batch_size=1000)
    assert scores["factor_code"] == {"scale": "c3", "rotation": "c2", "x": "c6", "y": "c4"}
    assert scores["mig"] > 0.9  # short of 1 by the binned estimate's bias for the noise code
    assert set(scores["code_factor_information"]) == {"c2", "c3", "c4", "c5", "c6"}
