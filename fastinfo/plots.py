"""The poster's figures: loss curves, the L_I curve with its H(c) line, and traversal grids."""

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from fastinfo.atomic import atomic_write  # noqa: E402


def save_figure(fig, path: Path) -> None:
    """Write fig as a PNG that replaces path whole (a figure rewritten during training is never
    left half-written by a kill), and close it."""
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def _series(rows: list[dict], key: str):
    pts = [(r["step"], r[key]) for r in rows if key in r]
    return [p[0] for p in pts], [p[1] for p in pts]


# the losses a run logs, by model: a GAN's D and G loss, a VAE's terms
LOSSES = (("loss_d", "D loss"), ("loss_g", "G loss"), ("loss", "loss"), ("reconstruction", "reconstruction"),
          ("kl_cont", "KL(q(z|x) ‖ N(0, I))"), ("kl_cat", "KL(q(c|x) ‖ uniform)"))


def loss_curves(rows: list[dict], path: Path, title: str) -> None:
    """The losses per iteration: D's and G's (the poster's Figures 1 and 2), or a VAE's terms
    (on a log scale: its reconstruction term is a hundred times its KL terms)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in LOSSES:
        if rows and key in rows[0]:
            ax.plot(*_series(rows, key), label=label, linewidth=0.8)
    if rows and "reconstruction" in rows[0]:
        ax.set_yscale("symlog", linthresh=1.0)
    ax.set(xlabel="iteration", ylabel="loss", title=title)
    ax.legend()
    save_figure(fig, path)


def metric_curve(rows: list[dict], key: str, path: Path, title: str, ylabel: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(*_series(rows, key), linewidth=0.8)
    ax.set(xlabel="iteration", ylabel=ylabel, title=title)
    save_figure(fig, path)


def info_curve(rows: list[dict], code_names: list[str], entropy: list[float], n_cat: int, path: Path,
               title: str) -> None:
    """L_I of each code per iteration (the poster's Figure 3 for c1), with H(c) for the first
    n_cat codes, the categorical ones, whose L_I it bounds. A continuous code's L_I has no such
    bound (with a learned sigma its NLL can go below zero), so it gets no line: its H(c) would
    read as a ceiling the curve crosses."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, h) in enumerate(zip(code_names, entropy)):
        categorical = i < n_cat
        label = f"L_I({name})" if categorical else f"L_I({name}), continuous: not bounded by H({name})"
        (line,) = ax.plot(*_series(rows, f"info_{name}"), label=label, linewidth=0.8)
        if categorical:
            ax.axhline(h, color=line.get_color(), linestyle="--", linewidth=0.8,
                       label=f"H({name}) = {h:.3f}" + (" = ln 10" if math.isclose(h, math.log(10)) else ""))
    ax.set(xlabel="iteration", ylabel="nats", title=title)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def reconstructions(originals: torch.Tensor, decoded: torch.Tensor, path: Path) -> None:
    """Test images [N, C, H, W] in [-1, 1] over their reconstructions, row by row."""
    n_cols = min(10, len(originals))
    rows = [t for i in range(0, len(originals), n_cols) for t in (originals[i : i + n_cols], decoded[i : i + n_cols])]
    grid = make_grid(torch.cat(rows).float().cpu(), nrow=n_cols, normalize=True, value_range=(-1, 1), padding=2)
    fig, ax = plt.subplots(figsize=(grid.shape[2] / 80 + 0.6, grid.shape[1] / 80 + 0.9))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("test images (odd rows) and their reconstructions (even rows)", fontsize=9)
    save_figure(fig, path)


def traversal_grid(images: torch.Tensor, n_cols: int, path: Path, code: str = "the code",
                   values: list[float] | None = None) -> None:
    """Images [rows * n_cols, C, H, W] in [-1, 1]: each row one fixed noise vector (and the other
    codes), each column one value of the swept code. The figure says so: its title names the
    code, the columns carry its values."""
    grid = make_grid(images.float().cpu(), nrow=n_cols, normalize=True, value_range=(-1, 1), padding=2)
    height, width = grid.shape[1:]
    fig, ax = plt.subplots(figsize=(width / 80 + 0.6, height / 80 + 0.9))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    cell = width / n_cols
    ax.set_xticks([cell * (i + 0.5) for i in range(n_cols)])
    if values is not None:
        ax.set_xticklabels([f"{v:g}" if float(v).is_integer() else f"{v:.1f}" for v in values], fontsize=7)
    ax.set_yticks([])
    ax.set_title(f"{code} varies along the columns", fontsize=9)
    ax.set_ylabel("rows: noise and other codes fixed", fontsize=7)
    save_figure(fig, path)


def count_criteria(stability: dict[int, dict], shares: dict[int, float], lifetimes: dict[int, float],
                   estimates: dict[str, dict], path: Path) -> None:
    """fastinfo.count_codes's criteria against the number of categories: the seeds' agreement per
    K (mean ± std over pairs of seeds), Q's information share per K, and the consensus tree's
    lifetime per number of clusters, each with its estimate (estimates[name]["k"]) marked."""
    panels = [p for p in ((stability, "stability", "agreement of seeds (mean ARI)", "K of the code's runs"),
                          (shares, "information", "information / ln K", "K of the code's runs"),
                          (lifetimes, "consensus", "lifetime in the consensus tree", "clusters")) if p[0]]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.5 * max(1, len(panels)), 3.6), squeeze=False)
    for ax, (values, name, ylabel, xlabel) in zip(axes[0], panels):
        ks = sorted(values)
        ys = [values[k]["mean"] if name == "stability" else values[k] for k in ks]
        errs = [values[k]["std"] for k in ks] if name == "stability" else None
        ax.errorbar(ks, ys, yerr=errs, marker="o", capsize=3)
        ax.axvline(estimates[name]["k"], color="k", ls="--", lw=0.8, label=f"estimate: {estimates[name]['k']}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend()
    save_figure(fig, path)


def continuous_codes(names: list[str], information: list[float], change: list[float],
                     correlations: list[list[float]] | None, threshold: float, path: Path) -> None:
    """Per continuous code, the information Q recovers from generated images (nats) and how much
    moving the code changes them (mean pixel change); with correlations (per pair of runs, their
    canonical correlations, largest first), a third panel of those against the threshold at which
    two runs count as agreeing on a dimension."""
    fig, axes = plt.subplots(1, 3 if correlations else 2, figsize=(13.5 if correlations else 9, 3.4))
    for ax, values, label in ((axes[0], information, "L_I (nats)"), (axes[1], change, "traversal change")):
        ax.bar(names, values)
        ax.set_ylabel(label)
    if correlations:
        for pair in correlations:
            axes[2].plot(range(1, len(pair) + 1), pair, marker="o", alpha=0.7)
        axes[2].axhline(threshold, color="k", ls="--", lw=0.8, label=f"agreed: >= {threshold}")
        axes[2].set_xlabel("canonical dimension (a line per pair of runs)")
        axes[2].set_ylabel("canonical correlation")
        axes[2].set_ylim(0, 1.02)
        axes[2].legend()
    save_figure(fig, path)
