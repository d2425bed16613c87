"""Evaluate a saved run: c1 clustering accuracy of Q on the test set.

    python -m fastinfo.evaluate RUN [RUN ...]

Q's argmax category is mapped to labels by the best one-to-one assignment (Hungarian), as
unsupervised clustering accuracy; NMI and ARI are reported beside it. Writes RUN/eval.json.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from fastinfo import data


def cluster_accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of pred under the best one-to-one map from predicted clusters to labels."""
    k = int(max(pred.max(), labels.max())) + 1
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (pred, labels), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(labels))


def clustering_scores(pred: np.ndarray, labels: np.ndarray) -> dict:
    return {
        "c1_accuracy": cluster_accuracy(pred, labels),
        "c1_nmi": float(normalized_mutual_info_score(labels, pred)),
        "c1_ari": float(adjusted_rand_score(labels, pred)),
    }


@torch.no_grad()
def c1_scores(model, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> dict:
    """Clustering scores of Q's first categorical code on (images uint8 [N, 28, 28], labels)."""
    k = model.spec.cat_sizes[0]
    preds = []
    for i in range(0, len(images), batch_size):
        x = data.to_model_range(images[i : i + batch_size].to(model.device).unsqueeze(1))
        preds.append(model.predict_codes(x)[:, :k].argmax(1).cpu())
    return clustering_scores(torch.cat(preds).numpy(), labels.numpy())


# A class counts as covered when it holds at least half its uniform share of generated images.
COVERED_SHARE = 0.5
COLLAPSE_BELOW = 8  # a run covering fewer of the 10 classes has collapsed


@torch.no_grad()
def generated_class_scores(model, clf, n_per_value: int = 200, seed: int = 0) -> dict:
    """How well c1 controls the class, judged by the project's classifier; applies to every model
    (for the vanilla GAN, c1 is plain noise, which makes this the fair comparison).

    c1_purity: mean over c1 values of the share of the majority class among images generated
    with that value; c1_distinct: how many distinct majority classes the values reach;
    classes_covered: classes holding >= half their uniform share of all generated images."""
    spec, device = model.spec, model.device
    gen = torch.Generator(device).manual_seed(seed)
    k = spec.cat_sizes[0] if spec.n_cat else 10
    n_classes = clf.head.out_features
    purities, majorities, counts = [], [], torch.zeros(n_classes)
    for value in range(k):
        z, cat, cont = spec.sample(n_per_value, device, gen)
        if spec.n_cat:
            cat[:, 0] = value
        pred = clf_predict(clf, model.generate(z, cat, cont))
        hist = torch.bincount(pred.cpu(), minlength=n_classes).float()
        counts += hist
        purities.append((hist.max() / n_per_value).item())
        majorities.append(int(hist.argmax()))
    share = counts / counts.sum()
    covered = int((share >= COVERED_SHARE / n_classes).sum())
    return {
        "c1_purity": sum(purities) / len(purities),
        "c1_distinct": len(set(majorities)),
        "classes_covered": covered,
        "collapsed": covered < COLLAPSE_BELOW,
    }


def clf_predict(clf, images: torch.Tensor) -> torch.Tensor:
    from fastinfo.classifier import predict

    return predict(clf, images.float())


def evaluate_model(model, cfg, clf=None, samples_per_value: int = 200) -> dict:
    """eval.json's content for a trained model; with a classifier, also the generated-class scores."""
    result = {"model": cfg.model, "preset": cfg.preset, "dataset": cfg.dataset}
    if model.use_q and model.spec.n_cat > 0:
        images, labels = data.load(cfg.dataset, train=False, data_root=cfg.data_root)
        result.update(c1_scores(model, images, labels))
    else:
        result["c1_accuracy"] = "n/a (no Q head trained)"
    if clf is not None:
        result.update(generated_class_scores(model, clf, samples_per_value))
    return result


def main(argv=None) -> int:
    from fastinfo.train import RunError, load_run

    p = argparse.ArgumentParser(prog="python -m fastinfo.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders written by fastinfo.train")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = p.parse_args(argv)
    for run in args.runs:
        try:
            cfg, model, state = load_run(Path(run), device=args.device)
            result = {"step": state["step"], **evaluate_model(model, cfg)}
        except (RunError, data.DataError) as e:
            print(f"error: {run}: {e}", file=sys.stderr)
            return 2
        (Path(run) / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"{run}: " + "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
