"""How well continuous codes match known factors of variation: the mutual information gap (MIG,
Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs"), and what a code traversal does
to the image.

MIG: for each factor v_k, the mutual information I(z_j; v_k) with every code z_j, both binned;
the gap between the largest and the second largest, divided by H(v_k); averaged over factors.
1 when each factor is carried by one code alone, 0 when two codes carry it alike or none does.
Codes are binned at their quantiles (equal counts per bin), which an outlying code value cannot
squeeze into one bin as equal-width bins would.
"""

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
