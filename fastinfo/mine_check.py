"""MINE on correlated Gaussians, where the truth is known: I(x; y) = -(d/2) log(1 - rho^2).

    python -m fastinfo.mine_check                       # the full table and plot
    python -m fastinfo.mine_check --dims 1 --rhos 0.5 --steps 1000

x, y in R^d with per-dimension correlation rho. For each (d, rho) and estimator (dv: plain DV
gradient; dv-ema: with MINE's bias correction; f: MINE-f; pairwise: separable critic, all pairs)
a fresh critic is trained with Adam, and the estimate is the mean DV bound (f-bound for "f") over
the last 10% of steps. Writes OUT/mine_check.json, OUT/mine_check.md and OUT/mine_check.png.
OUT/mine_check.json is written after each estimate: the same command run again, after an
interruption or with more dimensions or correlations, keeps the estimates it holds for the same
--steps and --batch-size and makes only the others.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from fastinfo import atomic
from fastinfo.arguments import (
    ArgumentParser,
    FolderError,
    comma_list,
    float_between,
    int_at_least,
    interrupted,
    make_folder,
    one_of,
    stops_as_on_ctrl_c,
)
from fastinfo.config import ConfigError, read_saved
from fastinfo.mine import MINE, ConcatCritic, SeparableCritic
from fastinfo.runs import RunError, resolve_device

ESTIMATORS = ("dv", "dv-ema", "f", "pairwise")


def true_mi(d: int, rho: float) -> float:
    return -0.5 * d * math.log1p(-(rho**2))


def sample(n: int, d: int, rho: float, gen: torch.Generator, device):
    x = torch.randn(n, d, generator=gen, device=device)
    eps = torch.randn(n, d, generator=gen, device=device)
    return x, rho * x + math.sqrt(1 - rho**2) * eps


def estimate(d: int, rho: float, estimator: str, steps: int = 3000, batch: int = 512, lr: float = 1e-3,
             seed: int = 0, device="cpu", hidden: int = 256) -> float:
    gen = torch.Generator(device).manual_seed(seed)
    torch.manual_seed(seed)
    if estimator == "pairwise":
        mine = MINE(SeparableCritic(d, d, embed_dim=32, hidden=hidden), "pairwise")
    else:
        mine = MINE(ConcatCritic(d, d, hidden), "f" if estimator == "f" else "dv",
                    bias_correction=estimator == "dv-ema")
    mine.to(device)
    opt = torch.optim.Adam(mine.parameters(), lr=lr)
    tail = []
    for step in range(steps):
        x, y = sample(batch, d, rho, gen, device)
        bound = mine(x, y, generator=gen)
        opt.zero_grad(set_to_none=True)
        (-bound).backward()
        opt.step()
        if step >= steps - max(1, steps // 10):
            tail.append(bound.detach())
    return torch.stack(tail).mean().item()


def arg_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m fastinfo.mine_check", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dims", default="1,5,20", type=comma_list(int_at_least(1)),
                   help="comma-separated dimensions d of x and of y")
    p.add_argument("--rhos", default="0.2,0.5,0.8,0.95", type=comma_list(float_between(-1, 1)),
                   help="comma-separated correlations rho of x_i and y_i, each in (-1, 1)")
    p.add_argument("--estimators", default=",".join(ESTIMATORS), type=comma_list(one_of(ESTIMATORS)),
                   help=f"comma-separated estimators, of {', '.join(ESTIMATORS)}")
    p.add_argument("--steps", type=int_at_least(1), default=3000, help="training steps of each statistics network")
    p.add_argument("--batch-size", type=int_at_least(2), default=512,
                   help="samples of (x, y) a step (the shuffled marginals need two)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
    p.add_argument("--out", default="runs/mine_check", help="folder for the table and the plot")
    return p


def saved_estimates(path: Path, steps: int, batch: int) -> dict:
    """{(d, rho, estimator): estimate} of the mine_check.json at path, if it was made with the same
    steps and batch size; empty otherwise (the file is then replaced)."""
    try:
        saved = read_saved(path) if path.is_file() else {}
    except ConfigError as e:
        print(f"warning: {e}; it is replaced", file=sys.stderr)
        return {}
    if saved and (saved.get("steps"), saved.get("batch")) != (steps, batch):
        print(f"warning: {path} holds estimates of --steps {saved.get('steps')} --batch-size {saved.get('batch')}; "
              "it is replaced", file=sys.stderr)
        return {}
    return {(r["d"], r["rho"], e): r[e] for r in saved.get("rows", []) for e in ESTIMATORS if e in r}


def table_rows(estimates: dict) -> list[dict]:
    """One row per (d, rho): the true MI and each estimator's estimate."""
    rows = {}
    for (d, rho, est), value in estimates.items():
        rows.setdefault((d, rho), {"d": d, "rho": rho, "true": true_mi(d, rho)})[est] = value
    return list(rows.values())


@stops_as_on_ctrl_c
def main(argv=None) -> int:
    args = arg_parser().parse_args(argv)
    out = Path(args.out)
    try:
        device = resolve_device(args.device)
        make_folder(out)
    except (RunError, FolderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path = out / "mine_check.json"
    estimates = saved_estimates(path, args.steps, args.batch_size)
    wanted = [(d, rho, e) for d in args.dims for rho in args.rhos for e in args.estimators]
    kept = sum(key in estimates for key in wanted)
    if kept:
        print(f"keeping {kept} of the {len(wanted)} estimates from {path} (the same --steps and --batch-size)",
              file=sys.stderr)
    try:
        for d, rho, est in wanted:
            if (d, rho, est) not in estimates:
                estimates[d, rho, est] = estimate(d, rho, est, args.steps, args.batch_size, device=device)
                atomic.write_text(path, json.dumps({"steps": args.steps, "batch": args.batch_size,
                                                    "rows": table_rows(estimates)}, indent=2) + "\n")
                print(json.dumps({"d": d, "rho": rho, "true": true_mi(d, rho), est: estimates[d, rho, est]}),
                      flush=True)
    except KeyboardInterrupt:
        return interrupted(f"the estimates made are kept in {path}; the same command goes on from there")
    rows = table_rows({key: estimates[key] for key in wanted})
    lines = ["| d | rho | true MI | " + " | ".join(args.estimators) + " |",
             "|" + " --- |" * (3 + len(args.estimators))]
    for r in rows:
        cells = [f"{r[e]:.3f}" + (f" ({100 * (r[e] - r['true']) / r['true']:+.0f}%)" if r["true"] else "")
                 for e in args.estimators]
        lines.append(f"| {r['d']} | {r['rho']} | {r['true']:.3f} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    atomic.write_text(out / "mine_check.md", table)
    print(table)
    plot(rows, args.dims, args.estimators, out / "mine_check.png")
    return 0


def plot(rows, dims, estimators, path):
    from fastinfo.plots import plt, save_figure  # (pyplot on the file-only backend)

    fig, axes = plt.subplots(1, len(dims), figsize=(4 * len(dims), 3.5), squeeze=False)
    for ax, d in zip(axes[0], dims):
        rs = [r for r in rows if r["d"] == d]
        rho = [r["rho"] for r in rs]
        ax.plot(rho, [r["true"] for r in rs], "k-", label="true MI")
        for est in estimators:
            ax.plot(rho, [r[est] for r in rs], "o--", label=est, markersize=4)
        ax.set(title=f"d = {d}", xlabel="rho", ylabel="nats")
    axes[0][0].legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
