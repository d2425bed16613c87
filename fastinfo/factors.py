"""How well continuous codes match known factors of variation: the mutual information gap (MIG,
Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs"), the FactorVAE score (Kim and
Mnih 2018), DCI (Eastwood and Williams 2018), and what a code traversal does to the image.

MIG: for each factor v_k, the mutual information I(z_j; v_k) with every code z_j, both binned;
the gap between the largest and the second largest, divided by H(v_k); averaged over factors.
1 when each factor is carried by one code alone, 0 when two codes carry it alike or none does.
Codes are binned at their quantiles (equal counts per bin), which an outlying code value cannot
squeeze into one bin as equal-width bins would.

FactorVAE score: draw a factor, then a batch of images that share one value of it (the others
vary as they do in the data); the code whose variance over the batch is least (codes scaled by
their spread over the data) votes for that factor. A majority-vote classifier from code to factor is fitted on one
set of votes and scored on another: 1 when every factor has a code of its own.

DCI: per factor, gradient-boosted trees predict it from the codes (as disentanglement_lib's
DCI). Their feature importances R [codes, factors] give disentanglement (each code's importance
concentrated on one factor: 1 - its entropy over factors, in base K, weighted by the code's share
of R), completeness (each factor's importance concentrated on one code: base J, weighted by the
factor's share) and informativeness (the trees' R^2 on held-out images). No maintained, light
library computes these for PyTorch models (disentanglement_lib needs TensorFlow), so they are
here, tested on codes whose scores are known.

Where no factor is known, how many continuous dimensions the data holds is read from independent
runs instead: their codes on the same held-out images, rank-transformed, and the canonical
correlations between two runs' codes (the cosines of the principal angles between the spaces the
codes span). A dimension of the data that both runs found shows as a correlation near 1, whatever
mix of codes carries it in each run; a code that only names a run's own arbitrary split of the
images matches nothing in the other run.
"""

import itertools

import numpy as np
import torch
from sklearn.metrics import mutual_info_score

MIG_BINS = 20  # as disentanglement_lib's MIG


def discretize(values: np.ndarray, bins: int = MIG_BINS) -> np.ndarray:
    """values [N, D] -> bin indices [N, D] in 0..bins-1, each column cut at its own quantiles
    (a column with fewer distinct values gets fewer bins)."""
    out = np.empty(values.shape, dtype=np.int64)
    for d in range(values.shape[1]):
        edges = np.unique(np.quantile(values[:, d], np.linspace(0, 1, bins + 1)[1:-1]))
        out[:, d] = np.searchsorted(edges, values[:, d], side="right")
    return out


def mutual_information_matrix(codes: np.ndarray, factors: np.ndarray, bins: int = MIG_BINS) -> np.ndarray:
    """I(code_j; factor_k) in nats [J, K] for codes [N, J] and factors [N, K], both binned."""
    c, f = discretize(codes, bins), discretize(factors, bins)
    return np.array([[mutual_info_score(c[:, j], f[:, k]) for k in range(f.shape[1])] for j in range(c.shape[1])])


def mutual_information_gap(codes: np.ndarray, factors: np.ndarray, bins: int = MIG_BINS) -> dict:
    """MIG of codes [N, J] (J >= 1) against factors [N, K].

    Returns:
        {"mig": the mean gap, "per_factor": [K] gaps, "mutual_information": [J][K] nats,
        "factor_entropy": [K] nats}. With one code, the second largest information is 0.
    """
    codes, factors = np.asarray(codes, dtype=np.float64), np.asarray(factors, dtype=np.float64)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors) or codes.shape[1] == 0:
        raise ValueError(f"codes [N, J >= 1] and factors [N, K] with the same N are needed, got "
                         f"{codes.shape} and {factors.shape}")
    mi = mutual_information_matrix(codes, factors, bins)
    f = discretize(factors, bins)
    entropy = np.array([mutual_info_score(f[:, k], f[:, k]) for k in range(f.shape[1])])
    top = -np.sort(-np.vstack([mi, np.zeros((1, mi.shape[1]))]), axis=0)
    gaps = (top[0] - top[1]) / entropy
    return {"mig": float(gaps.mean()), "per_factor": gaps.tolist(), "mutual_information": mi.tolist(),
            "factor_entropy": entropy.tolist()}


# images per FactorVAE vote, and votes to fit and to score the classifier: disentanglement_lib's
FACTORVAE_BATCH = 64
FACTORVAE_VOTES = (10000, 5000)
DCI_TRAIN_SHARE = 0.8  # of the images, to fit the trees on; the rest score their R^2


def factorvae_score(codes: np.ndarray, factors: np.ndarray, votes=FACTORVAE_VOTES, batch: int = FACTORVAE_BATCH,
                    bins: int = MIG_BINS, seed: int = 0) -> dict:
    """The FactorVAE score of codes [N, J] for images whose factors [N, K] are known.

    A vote's batch holds images that share one value of a factor: for a continuous factor, one of
    its bins (equal-count, as MIG's, and fewer where N holds fewer than bins batches; the factor
    then varies within the batch by 1/bins of its range at most), for a factor on a grid
    (dSprites), one grid value. The images are the data's own, so no renderer is needed. Codes
    are divided by their standard deviation over the images; codes without one are left out.

    Returns:
        {"score": the majority-vote classifier's accuracy on the scoring votes, "train_accuracy",
        "active_codes": codes that vote}; score 0 when no code varies.
    """
    codes, factors = np.asarray(codes, dtype=np.float64), np.asarray(factors, dtype=np.float64)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors) or len(codes) < 2 * batch:
        raise ValueError(f"codes [N >= {2 * batch}, J] and factors [N, K] with the same N are needed, got "
                         f"{codes.shape} and {factors.shape}")
    std = codes.std(0)
    active = np.flatnonzero(std > 0)
    if len(active) == 0:
        return {"score": 0.0, "train_accuracy": 0.0, "active_codes": 0}
    scaled = codes[:, active] / std[active]
    binned = discretize(factors, min(bins, len(codes) // batch))
    # per factor, its bins that hold a batch: [(members of the bin), ...]
    pools = [[np.flatnonzero(binned[:, k] == b) for b in np.unique(binned[:, k])] for k in range(factors.shape[1])]
    pools = [[members for members in pool if len(members) >= batch] for pool in pools]
    if not all(pools):
        raise ValueError(f"every factor needs a value (bin) shared by {batch} images or more")
    rng = np.random.default_rng(seed)
    tables = []
    for n_votes in votes:
        table = np.zeros((len(active), factors.shape[1]), dtype=np.int64)
        for k in rng.integers(factors.shape[1], size=n_votes):
            pool = pools[k][rng.integers(len(pools[k]))]
            members = rng.choice(pool, size=batch, replace=False)
            table[int(np.argmin(scaled[members].var(0, ddof=1))), k] += 1
        tables.append(table)
    fitted, scored = tables
    majority = fitted.argmax(1)
    return {"score": float(scored[np.arange(len(active)), majority].sum() / scored.sum()),
            "train_accuracy": float(fitted.max(1).sum() / fitted.sum()), "active_codes": len(active)}


def concentration(weights: np.ndarray) -> np.ndarray:
    """Per row of non-negative weights [R, C]: 1 - the entropy of the row's shares in base C (1
    for a row on one column, 0 for a row spread evenly; 1 when C is 1, 0 for an all-zero row)."""
    from scipy.stats import entropy

    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape[1] == 1:
        return (weights[:, 0] > 0).astype(np.float64)
    total = weights.sum(1)
    out = np.zeros(len(weights))
    rows = total > 0
    out[rows] = 1.0 - entropy(weights[rows].T, base=weights.shape[1])
    return out


def dci_from_importance(importance: np.ndarray) -> dict:
    """DCI's disentanglement and completeness from an importance matrix [J codes, K factors]."""
    r = np.abs(np.asarray(importance, dtype=np.float64))
    if r.sum() == 0:
        return {"disentanglement": 0.0, "completeness": 0.0}
    per_code, per_factor = concentration(r), concentration(r.T)
    return {"disentanglement": float((per_code * r.sum(1) / r.sum()).sum()),
            "completeness": float((per_factor * r.sum(0) / r.sum()).sum())}


def dci(codes: np.ndarray, factors: np.ndarray, seed: int = 0) -> dict:
    """DCI of codes [N, J] against continuous factors [N, K] (N >= 10).

    Returns:
        {"disentanglement", "completeness", "informativeness": the mean R^2 on the held-out
        images, "importance": [J][K]}.
    """
    from sklearn.ensemble import GradientBoostingRegressor

    codes, factors = np.asarray(codes, dtype=np.float64), np.asarray(factors, dtype=np.float64)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors) or codes.shape[1] == 0 or len(codes) < 10:
        raise ValueError(f"codes [N >= 10, J >= 1] and factors [N, K] with the same N are needed, got "
                         f"{codes.shape} and {factors.shape}")
    n = int(len(codes) * DCI_TRAIN_SHARE)
    importance, r2 = np.zeros((codes.shape[1], factors.shape[1])), []
    for k in range(factors.shape[1]):
        trees = GradientBoostingRegressor(random_state=seed).fit(codes[:n], factors[:n, k])
        importance[:, k] = trees.feature_importances_
        r2.append(trees.score(codes[n:], factors[n:, k]))
    return {**dci_from_importance(importance), "informativeness": float(np.mean(r2)),
            "importance": importance.tolist()}


# two runs agree on a dimension when their codes read it with a rank correlation of at least this
AGREED_CORRELATION = 0.8


def canonical_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The canonical correlations of the ranks of codes a [N, p] and b [N, q] of the same N images,
    largest first: [min(p, q)] values in [0, 1]. A code that is constant on the images spans
    nothing and lowers the count of correlations to those of the others."""
    from scipy.linalg import subspace_angles
    from scipy.stats import rankdata

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b) or min(a.shape[1], b.shape[1]) == 0:
        raise ValueError(f"codes [N, p >= 1] and [N, q >= 1] of the same N images are needed, got {a.shape} "
                         f"and {b.shape}")
    ranks = [rankdata(x, axis=0) for x in (a, b)]
    ranks = [r[:, r.std(0) > 0] - r[:, r.std(0) > 0].mean(0) for r in ranks]
    correlations = np.zeros(min(a.shape[1], b.shape[1]))
    if min(r.shape[1] for r in ranks):
        found = np.sort(np.cos(subspace_angles(*ranks)))[::-1]
        correlations[: len(found)] = found[: len(correlations)]
    return np.clip(correlations, 0.0, 1.0)


def agreed_dimensions(code_sets: list[np.ndarray], threshold: float = AGREED_CORRELATION) -> dict:
    """How many continuous dimensions independent runs agree on, from each run's codes [N, J] on
    the same images: per pair of runs, the canonical correlations at or above threshold.

    Returns:
        {"estimate": the median over pairs of the count (the lower middle for an even number of
        pairs), "counts": [P] per pair, "correlations": [P][J] canonical correlations}.
    """
    if len(code_sets) < 2:
        raise ValueError(f"agreement needs two runs or more, got {len(code_sets)}")
    correlations = [canonical_correlations(a, b) for a, b in itertools.combinations(code_sets, 2)]
    counts = [int((c >= threshold).sum()) for c in correlations]
    return {"estimate": sorted(counts)[(len(counts) - 1) // 2], "counts": counts,
            "correlations": [c.tolist() for c in correlations]}


@torch.no_grad()
def traversal_change(model, n_rows: int = 64, seed: int = 0) -> list[float]:
    """Per continuous code, how much moving it from -1 to 1 (the rest fixed, n_rows draws) changes
    the generated image: the mean absolute pixel difference, pixels in [0, 1]. A code the
    generator ignores changes nothing; one that moves a stroke changes a few percent."""
    spec = model.spec
    gen = torch.Generator(model.device).manual_seed(seed)
    change = []
    for j in range(spec.n_cont):
        z, cat, cont, _ = spec.traversal(spec.n_cat + j, n_rows, 2, 1.0, model.device, gen)
        images = model.generate(z, cat, cont).float().reshape(n_rows, 2, -1)  # values -1 and 1 side by side
        change.append(float((images[:, 1] - images[:, 0]).abs().mean() / 2))
    return change
