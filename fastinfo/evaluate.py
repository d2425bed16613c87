"""Evaluate saved runs: what c1 and the continuous codes control, and sample quality.

    python -m fastinfo.evaluate RUN [RUN ...]

c1 accuracy (models with Q): Q's argmax category on the test set, mapped to labels by the best
one-to-one assignment (Hungarian), as unsupervised clustering accuracy, with NMI and ARI beside
it; and a label-free score that ranks runs without labels, Q's mutual information between real
training images and c1 (at most ln 10). Then, judged by a classifier the project trains once per
data set: c1 purity and the classes covered by generated images; for each continuous code, the
rank correlations of its sweep with the digits' slant, thickness, width and area, and a
disentanglement score; the Fréchet distance in the classifier's features; L_I per code beside
H(c). --quick: c1 accuracy and the label-free score only. Writes RUN/eval.json.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from fastinfo import atomic, classifier, data, failure, metrics_log
from fastinfo.arguments import ArgumentParser, int_at_least, interrupted, stops_as_on_ctrl_c
from fastinfo.runs import RunError, load_run
from fastinfo.selection import c1_probabilities, label_free_score, predicted_codes


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


def c1_scores(model, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Clustering scores of Q's first categorical code on (images uint8 [N, S, S] or [N, C, S, S], labels)."""
    return clustering_scores(c1_probabilities(model, images).argmax(1), labels.numpy())


# A class counts as covered when it holds at least half its uniform share of generated images.
COVERED_SHARE = 0.5
COLLAPSE_SHARE = 0.8  # a run covering fewer than 80% of the classes (8 of MNIST's 10) has collapsed


@torch.no_grad()
def generated_class_scores(model, clf, classes: list[int], n_per_value: int = 200, seed: int = 0) -> dict:
    """How well c1 controls the class, judged by the project's classifier; applies to every model
    (for the vanilla GAN, c1 is plain noise, which makes this the fair comparison).

    c1_purity: mean over c1 values of the share of the majority class among images generated
    with that value; c1_distinct: how many distinct majority classes the values reach;
    classes_covered: of the run's classes (a --classes subset), those holding >= half their
    uniform share of all generated images. Without a categorical code, only the classes covered
    (and collapse) mean something: purity is "n/a"."""
    spec, device = model.spec, model.device
    gen = torch.Generator(device).manual_seed(seed)
    k = spec.cat_sizes[0] if spec.n_cat else 10
    n_classes = clf.head.out_features
    purities, majorities, counts = [], [], torch.zeros(n_classes)
    for value in range(k):
        z, cat, cont = spec.sample(n_per_value, device, gen)
        if spec.n_cat:
            cat[:, 0] = value
        pred = classifier.predict(clf, model.generate(z, cat, cont).float())
        hist = torch.bincount(pred.cpu(), minlength=n_classes).float()
        counts += hist
        purities.append((hist.max() / n_per_value).item())
        majorities.append(int(hist.argmax()))
    share = counts[classes] / counts.sum()
    covered = int((share >= COVERED_SHARE / len(classes)).sum())
    no_code = "n/a (no categorical code)"
    return {
        "c1_purity": sum(purities) / len(purities) if spec.n_cat else no_code,
        "c1_distinct": len(set(majorities)) if spec.n_cat else no_code,
        "classes_covered": covered,
        "collapsed": covered < math.ceil(COLLAPSE_SHARE * len(classes)),
    }


# The two factors the InfoGAN paper finds in MNIST's continuous codes; the score looks at these.
SCORED_MEASURES = ("slant", "thickness")


@torch.no_grad()
def continuous_code_scores(model, n_rows: int = 64, n_values: int = 9, span: float = 2.0, seed: int = 0) -> dict:
    """Sweep each continuous code from -span to span (the rest fixed per row, n_rows noise draws),
    measure every generated image (fastinfo.morpho) and report the Spearman correlation of each
    code with each measure.

    disentanglement: for slant and thickness, the gap between the largest and the second-largest
    |rho| over the codes (MIG-style, with rank correlation for mutual information), averaged over
    the two; 1 when each factor is moved by exactly one code and untouched by the others."""
    # imported here: scipy.stats and scikit-image are slow to import, and training imports this module
    from scipy.stats import spearmanr

    from fastinfo import morpho

    spec = model.spec
    if spec.n_cont == 0:
        return {}
    gen = torch.Generator(model.device).manual_seed(seed)
    rho = {}
    for j in range(spec.n_cont):
        z, cat, cont, n = spec.traversal(spec.n_cat + j, n_rows, n_values, span, model.device, gen)
        # the measures are of ink on a grey image: a colour image's channels are averaged
        images = (model.generate(z, cat, cont).float().mean(1).cpu().numpy() + 1) / 2
        values = cont[:, j].cpu().numpy()
        measures = morpho.measure(images)
        name = spec.code_names[spec.n_cat + j]
        rho[name] = {}
        for m, v in measures.items():
            ok = np.isfinite(v)
            r = spearmanr(values[ok], v[ok]).statistic if ok.sum() > 2 and np.ptp(v[ok]) > 0 else 0.0
            rho[name][m] = float(r)
    gaps = []
    for m in SCORED_MEASURES:
        top = sorted((abs(rho[c][m]) for c in rho), reverse=True) + [0.0]
        gaps.append(top[0] - top[1])
    return {"code_measure_spearman": rho, "disentanglement": float(np.mean(gaps))}


def encoded_factors(model, images: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """Q's codes on the images as float64 numpy [N, n_cat + n_cont], read in batches: each
    categorical code's most likely category, then the continuous codes' means."""
    cat_logits, means = predicted_codes(model, images, batch_size)
    columns = [part.argmax(1, keepdim=True) for part in cat_logits.split(list(model.spec.cat_sizes), 1)]
    return torch.cat([*columns, means], 1).double().numpy()


def factor_information(codes: np.ndarray, factors: np.ndarray, names: list[str], factor_names: tuple[str, ...]) -> dict:
    """For a data set whose factors are known (shapes, dSprites): the MIG of codes [N, J] (Q's,
    named names) against the factors [N, F] (named factor_names; fastinfo.factors), and per
    factor the code that carries the most information about it."""
    from fastinfo import factors as factor_metrics

    mig = factor_metrics.mutual_information_gap(codes, factors)
    mi = np.array(mig["mutual_information"])
    return {"mig": mig["mig"], "factor_mig": dict(zip(factor_names, mig["per_factor"])),
            "factor_code": {f: names[int(mi[:, k].argmax())] for k, f in enumerate(factor_names)},
            "code_factor_information": {name: dict(zip(factor_names, row)) for name, row in zip(names, mi.tolist())}}


def factor_scores(model, images: torch.Tensor, factors: torch.Tensor, factor_names: tuple[str, ...],
                  batch_size: int = 1000) -> dict:
    """Q's codes on the images (uint8 [N, S, S]; encoded_factors) against their known factors
    [N, F] (named factor_names): factor_information, with the FactorVAE score and DCI
    (fastinfo.factors) of the same codes."""
    from fastinfo import factors as factor_metrics

    codes, known = encoded_factors(model, images, batch_size), factors.double().numpy()
    dci = factor_metrics.dci(codes, known)
    least = 2 * factor_metrics.FACTORVAE_BATCH
    factorvae = (factor_metrics.factorvae_score(codes, known)["score"] if len(images) >= least
                 else f"n/a (fewer than {least} test images)")
    return {**factor_information(codes, known, model.spec.code_names, factor_names),
            "factorvae_score": factorvae, "dci_disentanglement": dci["disentanglement"],
            "dci_completeness": dci["completeness"], "dci_informativeness": dci["informativeness"]}


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a [N, d] and b [M, d]:
    |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr (C_a C_b)^(1/2) = tr (S C_b S)^(1/2) with S = C_a^(1/2): S C_b S is symmetric and
    # positive semi-definite, so its eigenvalues are real and >= 0 up to rounding, also where a
    # covariance is singular (dead classifier features, a collapsed generator), where sqrtm of
    # the product is inaccurate
    w, v = np.linalg.eigh(cov_a)
    s = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = s @ cov_b @ s
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


@torch.no_grad()
def sample_fid(model, clf, test_images: torch.Tensor, n: int = 10000, batch_size: int = 1000, seed: int = 0) -> float:
    """Fréchet distance between n generated images and the test images in the penultimate-layer
    features of the project's classifier."""
    clf.eval()
    device = next(clf.parameters()).device
    gen = torch.Generator(model.device).manual_seed(seed)
    fake, real = [], []
    for i in range(0, n, batch_size):
        z, cat, cont = model.spec.sample(min(batch_size, n - i), model.device, gen)
        fake.append(clf.features(model.generate(z, cat, cont).float().to(device)).cpu())
    for i in range(0, len(test_images), batch_size):
        x = data.to_model_range(data.with_channels(test_images[i : i + batch_size].to(device)))
        real.append(clf.features(x).cpu())
    return frechet_distance(torch.cat(fake).double().numpy(), torch.cat(real).double().numpy())


def final_information(run: Path, spec, fraction: float = 0.05) -> dict:
    """L_I of each code averaged over the last 5% of logged steps, beside H(c)."""
    rows = metrics_log.read(run / "metrics.jsonl")
    rows = rows[int(len(rows) * (1 - fraction)) :]
    out = {}
    for name, h in zip(spec.code_names, spec.entropy().tolist()):
        vals = [r[f"info_{name}"] for r in rows if f"info_{name}" in r]
        if vals:
            out[name] = {"L_I": float(np.mean(vals)), "H": h}
    return out


def evaluate_model(model, cfg, clf=None, samples_per_value: int = 200, full: bool = False,
                   run: Path | None = None, fid_samples: int = 10000) -> dict:
    """eval.json's content for a trained model. With a classifier, also the generated-class
    scores; with full=True also the continuous-code measures, the Fréchet distance and L_I; with
    the run's folder, whether the failure check flagged it (fastinfo.failure)."""
    result = {"model": cfg.model, "preset": cfg.preset, "dataset": cfg.dataset}
    images, labels = data.load_split(cfg, train=False)
    if model.infers_codes and model.spec.n_cat > 0:
        result.update(c1_scores(model, images, labels) if data.labelled(cfg.dataset)
                      else {"c1_accuracy": f"n/a ({cfg.dataset} has no classes)"})
        result.update(label_free_score(model, cfg))
    else:
        result["c1_accuracy"] = "n/a (no Q head trained)" if not model.infers_codes else "n/a (no categorical code)"
    if hasattr(model, "test_scores"):  # a VAE: its ELBO and reconstruction error on the test images
        result.update(model.test_scores(images, torch.Generator(model.device).manual_seed(0)))
    if clf is not None:
        kept = list(data.kept_classes(cfg.classes, cfg.dataset))
        result.update(generated_class_scores(model, clf, kept, samples_per_value))
    if full:
        result.update(continuous_code_scores(model))
        if model.spec.n_cont:
            from fastinfo.factors import traversal_change

            result["traversal_change"] = dict(zip(model.spec.code_names[model.spec.n_cat :], traversal_change(model)))
        factor_names = data.factor_names(cfg)
        if factor_names and model.infers_codes:
            result.update(factor_scores(model, images, data.known_factors(cfg, train=False), factor_names))
        if clf is not None:
            result["fid"] = sample_fid(model, clf, images, n=fid_samples)
        if run is not None:
            result["information"] = final_information(run, model.spec)
    if run is not None:
        found = failure.recorded(run)
        result["failed"] = found.describe() if found else False
    return result


def arg_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m fastinfo.evaluate", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders written by fastinfo.train")
    p.add_argument("--device", default="auto",
                   help="auto (a GPU when there is one, wherever the run trained), cpu, cuda or cuda:N")
    p.add_argument("--data-root", help="folder holding the data set's IDX files, in place of the run's own "
                                       "(where the data has moved since it trained)")
    p.add_argument("--quick", action="store_true",
                   help="c1 accuracy and the label-free score only: no classifier, no continuous-code measures, "
                        "no Fréchet distance")
    p.add_argument("--fid-samples", type=int_at_least(2), default=10000,
                   help="generated images for the Fréchet distance")
    return p


def evaluate_run(run: str, args, classifiers: dict) -> dict:
    """run's eval.json under the command's options; classifiers holds each data set's, loaded (or
    trained) once."""
    cfg, model, state = load_run(Path(run), device=args.device, data_root=args.data_root)
    clf = None
    if not args.quick and data.labelled(cfg.dataset):
        if cfg.dataset not in classifiers:
            classifiers[cfg.dataset] = classifier.load_or_train(cfg.dataset, model.device, cfg.data_root)[0]
        clf = classifiers[cfg.dataset]
    return {"step": state["step"], **evaluate_model(model, cfg, clf, full=not args.quick, run=Path(run),
                                                     fid_samples=args.fid_samples)}


@stops_as_on_ctrl_c
def main(argv=None) -> int:
    args = arg_parser().parse_args(argv)
    runs = [str(run) for run in dict.fromkeys(Path(r) for r in args.runs)]  # a run given twice is evaluated once
    classifiers, failed, done = {}, [], []
    try:
        for run in runs:
            try:
                result = evaluate_run(run, args, classifiers)
            except (RunError, data.DataError) as e:
                # the other runs are still evaluated: each takes minutes
                print(f"error: {e}" if run in str(e) else f"error: {run}: {e}", file=sys.stderr)
                failed.append(run)
                continue
            atomic.write_text(Path(run) / "eval.json", json.dumps(result, indent=2) + "\n")
            done.append(run)
            print(f"{run}: " + "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in result.items() if not isinstance(v, dict)))
    except KeyboardInterrupt:
        left = [r for r in runs if r not in done and r not in failed]
        return interrupted(f"not evaluated: {', '.join(left)}"
                           + (f"; evaluated, each in its eval.json: {', '.join(done)}" if done else ""))
    if failed:
        print(f"error: {len(failed)} of {len(runs)} runs not evaluated: {', '.join(failed)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
