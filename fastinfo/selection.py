"""Label-free ways to rank runs: which of several seeds made c1 the digit, without reading a label.

Two scores, both computed on real training images through Q alone:
- the information score of one run: Q's mutual information between an image and c1,
  H(mean_x q(c|x)) - mean_x H(q(c|x)), at most ln K;
- the agreement of a run with the other runs of a sweep: the mean adjusted Rand index between its
  assignment of the images to c1's values and each other run's. Runs that found the digits
  agree with each other; runs that merged or split digits each do so their own way.
How well each predicts c1 accuracy is measured in docs/results.md.
"""

import numpy as np
import torch

from fastinfo import categories, data

# The training images the scores read: the first ones, the same for every run.
LABEL_FREE_IMAGES = 10000


@torch.no_grad()
def predicted_codes(model, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Q's (categorical logits [N, sum K], continuous codes' means [N, n_cont]) on the CPU for
    images uint8 [N, S, S] or [N, C, S, S], read batch by batch on the model's device."""
    parts = []
    for i in range(0, len(images), batch_size):
        x = data.to_model_range(data.with_channels(images[i : i + batch_size].to(model.device)))
        parts.append([t.cpu() for t in model.predict_codes(x)])
    return tuple(torch.cat(column) for column in zip(*parts))


def c1_probabilities(model, images: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """Q's distribution over the first categorical code, float64 [N, K], for images uint8 [N, S, S] or [N, C, S, S]."""
    logits = predicted_codes(model, images, batch_size)[0]
    return torch.softmax(logits[:, : model.spec.cat_sizes[0]].double(), 1).numpy()


def training_probabilities(model, cfg) -> np.ndarray:
    """c1_probabilities on the first LABEL_FREE_IMAGES training images of the run's data set."""
    images, _ = data.load_split(cfg, train=True)
    return c1_probabilities(model, images[:LABEL_FREE_IMAGES])


def information_score(probs: np.ndarray) -> float:
    """H(mean_x q(c|x)) - mean_x H(q(c|x)) in nats for Q's distributions probs [N, K]: the mutual
    information between an image and the code Q gives it, at most ln K. High when Q assigns every
    image confidently and uses every category about equally often."""
    from scipy.special import entr  # -p ln p, 0 at p = 0

    return float(entr(probs.mean(0)).sum() - entr(probs).sum(1).mean())


def label_free_score(model, cfg) -> dict:
    """eval.json's label_free_score (the information score on training images) beside its
    maximum ln K."""
    return {"label_free_score": information_score(training_probabilities(model, cfg)),
            "label_free_score_max": float(np.log(model.spec.cat_sizes[0]))}


def agreement(assignments: dict[str, np.ndarray]) -> dict[str, float]:
    """Per run, the mean adjusted Rand index between its assignments [N] (c1's value per image)
    and every other run's, on the same images; needs two runs or more."""
    if len(assignments) < 2:
        raise ValueError(f"agreement needs the assignments of two runs or more, got {len(assignments)}")
    names = list(assignments)
    upper = np.zeros((len(names), len(names)))
    # row by row, as pairwise_agreement takes the pairs
    upper[np.triu_indices(len(names), 1)] = categories.pairwise_agreement(list(assignments.values()))
    ari = np.eye(len(names)) + upper + upper.T
    return {name: float((ari[i].sum() - 1) / (len(names) - 1)) for i, name in enumerate(names)}
