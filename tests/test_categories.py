import math

import numpy as np
import pytest
from sklearn.cluster import KMeans

from fastinfo import categories


def prototypes_with_noise(k: int, n: int = 300, seed: int = 0) -> np.ndarray:
    """n noisy copies of k distinct random 'images' (64 pixels): k clusters, well apart."""
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(k, 64)) * 3
    return protos[rng.integers(k, size=n)] + rng.normal(size=(n, 64))


def kmeans_runs(x: np.ndarray, k: int, seeds=range(4)) -> list[np.ndarray]:
    """Several 'runs' that assign x to k values, each from its own seed."""
    return [KMeans(k, n_init=1, random_state=s).fit_predict(x) for s in seeds]


@pytest.mark.parametrize("k", [3, 5])
def test_stability_peaks_at_the_number_of_clusters(k):
    x = prototypes_with_noise(k)
    curve = categories.stability_curve({j: kmeans_runs(x, j) for j in range(2, 9)})
    assert categories.stability_estimate(curve) == k
    assert curve[k]["mean"] == pytest.approx(1.0) and curve[k]["pairs"] == 6


@pytest.mark.parametrize("k", [3, 5])
def test_consensus_of_oversized_runs_finds_the_number_of_clusters(k):
    x = prototypes_with_noise(k)
    lifetimes = categories.consensus_lifetimes(kmeans_runs(x, 4 * k, seeds=range(6)), k_limit=4 * k)
    assert categories.consensus_estimate(lifetimes) == k
    assert sorted(lifetimes) == list(range(2, 4 * k + 1))


def test_coassociation_and_lifetimes_of_a_small_case():
    runs = [np.array([0, 0, 1, 1]), np.array([0, 1, 2, 2])]
    together = categories.coassociation(runs)
    assert together.tolist() == [[1, 0.5, 0, 0], [0.5, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    # distances: {2,3} merge at 0, {0,1} at 0.5, the two groups at 1: two clusters live 0.5, three 0.5
    assert categories.consensus_lifetimes(runs, k_limit=3) == {2: 0.5, 3: 0.5}


def test_agreement_needs_two_runs_and_is_chance_corrected():
    with pytest.raises(ValueError, match="two runs"):
        categories.pairwise_agreement([np.zeros(5)])
    rng = np.random.default_rng(0)
    a, b = rng.integers(4, size=5000), rng.integers(4, size=5000)
    assert abs(categories.pairwise_agreement([a, b])[0]) < 0.01  # independent assignments: ARI near 0
    assert categories.pairwise_agreement([a, (a + 1) % 4])[0] == pytest.approx(1.0)  # renamed values


def test_used_categories_counts_by_entropy():
    assert categories.used_categories(np.full((10, 4), 0.25)) == pytest.approx(4.0)
    one_hot = np.eye(4)[[0, 1, 2, 3] * 5]
    assert categories.used_categories(one_hot) == pytest.approx(4.0)
    assert categories.used_categories(np.eye(4)[[2] * 20]) == pytest.approx(1.0)
    half = np.eye(4)[[0, 1] * 10]
    assert categories.used_categories(half) == pytest.approx(2.0)
    assert math.isfinite(categories.used_categories(np.eye(6)[[0, 1, 2] * 3]))


def test_stability_takes_the_finest_partition_among_ties():
    curve = {k: {"mean": m, "std": 0.0, "pairs": 3} for k, m in {2: 1.0, 3: 1.0, 4: 0.77, 5: 0.99}.items()}
    assert categories.stability_estimate(curve) == 3
    assert categories.stability_estimate({**curve, 3: {"mean": 0.97}}) == 2


def test_information_estimate_takes_the_largest_share():
    assert categories.information_estimate({2: 0.92, 3: 0.945, 4: 0.876, 5: 0.853}) == 3
    assert categories.information_estimate({2: 0.9, 3: 0.9}) == 2
