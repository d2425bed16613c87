import math

import numpy as np
import pytest
import torch

from fastinfo import evaluate, factors, runs, shapes, train
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
    known = torch.rand(3000, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    # images whose first row's first pixels hold the factors
    images = torch.zeros(len(known), 28, 28, dtype=torch.uint8)
    images[:, 0, :4] = ((known + 1) / 2 * 255).round().to(torch.uint8)

    class ReadsTheFactors:
        spec = runs.latent_spec(train.make_config({"n_cont": 5}))
        device = torch.device("cpu")

        def predict_codes(self, x):
            rows = x[:, 0, 0, :4]  # the factors, back in [-1, 1]
            # c2..c6: rotation, scale, y, noise, x
            noise = torch.randn(len(x), generator=torch.Generator().manual_seed(len(x)))
            means = torch.stack([rows[:, 1], rows[:, 0], rows[:, 3], noise, rows[:, 2]], 1)
            return torch.zeros(len(x), 10), means

    scores = evaluate.factor_scores(ReadsTheFactors(), images, known, shapes.FACTORS, batch_size=1000)
    assert scores["factor_code"] == {"scale": "c3", "rotation": "c2", "x": "c6", "y": "c4"}
    assert scores["mig"] > 0.9  # short of 1 by the binned estimate's bias for the noise code
    # c1 (the categorical code, its most likely category) is constant here: it carries nothing
    assert set(scores["code_factor_information"]) == {"c1", "c2", "c3", "c4", "c5", "c6"}
    assert not any(scores["code_factor_information"]["c1"].values())
    assert scores["factorvae_score"] == 1.0  # a batch's fixed factor varies within one bin only
    assert scores["dci_disentanglement"] > 0.9 and scores["dci_completeness"] > 0.9
    assert scores["dci_informativeness"] > 0.95


@pytest.fixture
def grid_factors():
    """Four factors on a grid of 6 values each, every combination present 3 times: [3888, 4]."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, 6)] * 4, indexing="ij"), -1).reshape(-1, 4)
    return np.repeat(grid, 3, axis=0)


def test_factorvae_score_of_codes_whose_score_is_known(grid_factors):
    for f in (np.random.default_rng(2).uniform(-1, 1, size=(6000, 4)), grid_factors):
        assert factors.factorvae_score(f[:, [2, 0, 3, 1]] * [1, 3, -1, 0.5], f)["score"] == 1.0
    f = grid_factors
    # one code carries two factors: its votes split between them, so one of the two is lost (3/4)
    merged = np.c_[f[:, 0] + f[:, 1], f[:, 2], f[:, 3]]
    result = factors.factorvae_score(merged, f)
    assert result["score"] == pytest.approx(0.75, abs=0.02) and result["active_codes"] == 3
    # codes that ignore the factors vote at random
    assert factors.factorvae_score(np.random.default_rng(5).normal(size=(len(f), 4)), f)["score"] < 0.4
    # a code constant over the images does not vote; none varying: no score
    assert factors.factorvae_score(np.c_[f, np.zeros(len(f))], f)["active_codes"] == 4
    assert factors.factorvae_score(np.zeros((len(f), 2)), f)["score"] == 0.0
    # fewer images than 20 bins of 64: fewer, larger bins
    assert factors.factorvae_score(f[::10, [2, 0, 3, 1]], f[::10])["score"] == 1.0
    with pytest.raises(ValueError, match=r"codes \[N >= 128, J\]"):
        factors.factorvae_score(f[:100], f[:100])


def test_dci_of_importance_matrices_whose_scores_are_known():
    assert factors.dci_from_importance(np.eye(4)) == {"disentanglement": 1.0, "completeness": 1.0}
    # code 0 carries factors 0 and 1 alike (1 - ln 2 / ln 4 = 0.5, half the importance); codes 1 and
    # 2 one factor each; every factor is carried by one code: completeness 1
    two_in_one = np.array([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    result = factors.dci_from_importance(two_in_one)
    assert result["disentanglement"] == pytest.approx(0.5 * 0.5 + 0.25 + 0.25)
    assert result["completeness"] == pytest.approx(1.0)
    spread = factors.dci_from_importance(np.ones((3, 4)))
    assert spread == pytest.approx({"disentanglement": 0.0, "completeness": 0.0}, abs=1e-12)
    # a code of no importance weighs nothing
    assert factors.dci_from_importance(np.r_[np.eye(2), np.zeros((1, 2))])["disentanglement"] == pytest.approx(1.0)
    assert factors.dci_from_importance(np.zeros((2, 2))) == {"disentanglement": 0.0, "completeness": 0.0}


def test_dci_fits_trees_that_read_each_factor_from_its_code(uniform_factors):
    f = uniform_factors[:2000]
    perfect = factors.dci(np.c_[np.exp(f[:, 1]), -f[:, 2], f[:, 0] * 4], f)
    assert perfect["disentanglement"] > 0.95 and perfect["completeness"] > 0.95
    assert perfect["informativeness"] > 0.98
    assert np.argmax(perfect["importance"], axis=0).tolist() == [2, 0, 1]
    noise = factors.dci(np.random.default_rng(1).normal(size=(2000, 3)), f)
    assert noise["informativeness"] < 0.05 and noise["disentanglement"] < 0.2
    with pytest.raises(ValueError, match="same N"):
        factors.dci(f[:, :1], f[1:])


def runs_sharing(factors_: np.ndarray, n_own: int, seed: int) -> np.ndarray:
    """One run's codes: a random mix of the shared factors, bent by a monotone map, with noise,
    and n_own codes of its own (independent of everything)."""
    rng = np.random.default_rng(seed)
    n, d = factors_.shape
    mixed = factors_ @ np.linalg.qr(rng.normal(size=(d, d)))[0] + 0.05 * rng.normal(size=(n, d))
    return np.c_[np.tanh(mixed), rng.normal(size=(n, n_own))]


def test_canonical_correlations_find_a_shared_space_however_each_run_mixes_it(uniform_factors):
    a, b = runs_sharing(uniform_factors, 2, seed=1), runs_sharing(uniform_factors, 2, seed=2)
    rho = factors.canonical_correlations(a, b)
    assert rho.shape == (5,) and np.all(np.diff(rho) <= 1e-12)  # largest first
    assert rho[2] > 0.9 and rho[3] < 0.1  # three shared dimensions, the rest chance (~sqrt(5 / 6000))
    # a monotone map of one code alone changes no rank: a correlation of exactly 1
    x = uniform_factors[:, :1]
    assert factors.canonical_correlations(x, np.exp(3 * x)) == pytest.approx([1.0])
    # a code constant on the images spans nothing
    assert factors.canonical_correlations(np.c_[x, np.zeros(len(x))], np.c_[x, x ** 3 + 1]) == pytest.approx([1.0, 0.0])
    with pytest.raises(ValueError, match="same N"):
        factors.canonical_correlations(x, x[1:])


@pytest.mark.parametrize("shared, own", [(3, 3), (1, 5), (0, 4)])
def test_agreed_dimensions_counts_what_every_run_found(shared, own):
    known = np.random.default_rng(0).uniform(-1, 1, size=(3000, shared))
    runs_ = [runs_sharing(known, own, seed) for seed in range(3)]
    result = factors.agreed_dimensions(runs_)
    assert result["estimate"] == shared and result["counts"] == [shared] * 3
    assert len(result["correlations"]) == 3 and len(result["correlations"][0]) == shared + own
    with pytest.raises(ValueError, match="two runs or more"):
        factors.agreed_dimensions(runs_[:1])
