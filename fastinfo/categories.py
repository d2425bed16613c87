"""How many categories a data set holds, estimated without labels from the categorical code's
assignments of the same held-out images by several runs.

A single run cannot tell: with a uniform prior over K values, I(c; G(z, c)) reaches ln K for any K
(G splits a class by style, or draws two classes under one value), and Q then assigns real images
to all K values. What does tell is whether independent runs agree. Two estimators:

- stability (a sweep over K): for each K, several seeds, and the mean adjusted Rand index (ARI)
  between every pair of seeds' assignments. At the data's own K each run finds the classes and the
  runs agree; with more values each splits its own class by its own style, and they agree less.
  With fewer, runs that merge different pairs of classes agree less, but a pair close enough for
  every run to merge it agrees as well as K: K-hat is the K of the highest mean agreement, the
  larger on a tie. The same sweep gives a third, run-by-run reading: the information score (Q's
  mutual information with real images) as a share of ln K, highest at the data's K.
- consensus (one oversized code, K_max values, over seeds): the co-association of two images is
  the share of runs that give them the same value. Images of one class are often together, since
  each run splits a class its own way; images of two classes almost never are. Average-linkage
  clustering of 1 - co-association, and K-hat the number of clusters that lives longest as the cut
  height rises (Fred and Jain 2005, "Combining multiple clusterings using evidence accumulation").

Both fail where every seed makes the same split (a style as distinct as a class) or the same merge.
"""

import itertools

import numpy as np
from sklearn.metrics import adjusted_rand_score


def pairwise_agreement(assignments: list[np.ndarray]) -> np.ndarray:
    """The ARI of every pair of assignments [N] of the same images: [P] for P = n (n - 1) / 2 pairs."""
    if len(assignments) < 2:
        raise ValueError(f"agreement needs two runs or more, got {len(assignments)}")
    return np.array([adjusted_rand_score(a, b) for a, b in itertools.combinations(assignments, 2)])


def stability_curve(assignments_by_k: dict[int, list[np.ndarray]]) -> dict[int, dict]:
    """Per K, the agreement of its runs: {K: {"mean", "std", "pairs"}} over the pairs of runs."""
    curve = {}
    for k, assignments in sorted(assignments_by_k.items()):
        ari = pairwise_agreement(assignments)
        curve[k] = {"mean": float(ari.mean()), "std": float(ari.std()), "pairs": len(ari)}
    return curve


def stability_estimate(curve: dict[int, dict]) -> int:
    """K-hat: the K whose runs agree most; on a tie the larger K. A merge of two classes that
    every seed makes alike is as stable as the classes themselves (K - 1 agrees as well as K):
    the finer partition that still holds is the answer."""
    best = max(entry["mean"] for entry in curve.values())
    return max(k for k, entry in curve.items() if entry["mean"] >= best - 1e-9)


def information_estimate(shares: dict[int, float]) -> int:
    """K-hat from the same sweep, run by run: the K whose runs' Q carries the largest share of
    ln K as information about real images (the information score over ln K, averaged over
    seeds). A split of a class by style leaves Q unsure near the split, a merge leaves a value
    holding more than its share of images; both lower the share. The smaller K on a tie."""
    return max(sorted(shares), key=lambda k: shares[k])


def coassociation(assignments: list[np.ndarray]) -> np.ndarray:
    """[N, N]: the share of the runs (each an assignment [N] of the same images) that give images
    i and j the same value."""
    n = len(assignments[0])
    together = np.zeros((n, n))
    for a in assignments:
        a = np.asarray(a)
        together += a[:, None] == a[None, :]
    return together / len(assignments)


def consensus_lifetimes(assignments: list[np.ndarray], k_limit: int) -> dict[int, float]:
    """Per number of clusters k in 2..k_limit, its lifetime: how far the cut height of the
    average-linkage tree of 1 - co-association can rise while k clusters remain."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    distance = 1.0 - coassociation(assignments)
    np.fill_diagonal(distance, 0.0)
    heights = linkage(squareform(distance, checks=False), method="average")[:, 2]  # ascending, N - 1 merges
    n = len(heights) + 1
    # k clusters remain between the (n - k)-th merge and the next one
    return {k: float(heights[n - k] - heights[n - k - 1]) for k in range(2, min(k_limit, n - 1) + 1)}


def consensus_estimate(lifetimes: dict[int, float]) -> int:
    """K-hat: the number of clusters with the longest lifetime (the smaller on a tie)."""
    return max(sorted(lifetimes), key=lambda k: lifetimes[k])


def used_categories(probs: np.ndarray) -> float:
    """exp(H(mean_x q(c|x))) for Q's distributions probs [N, K]: how many values the run uses
    on real images, counted by their entropy. Shown beside the estimates: with a uniform prior it
    sits near K whatever the data holds, the trap the two estimators avoid."""
    from scipy.special import entr

    return float(np.exp(entr(probs.mean(0)).sum()))
