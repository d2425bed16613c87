"""MINE on correlated Gaussians, where the truth is known: I(x; y) = -(d/2) log(1 - rho^2).

    python -m fastinfo.mine_check                       # the full table and plot
    python -m fastinfo.mine_check --dims 1 --rhos 0.5 --steps 1000

x, y in R^d with per-dimension correlation rho. For each (d, rho) and estimator (dv: plain DV
gradient; dv-ema: with MINE's bias correction; f: MINE-f; pairwise: separable critic, all pairs)
a fresh critic is trained with Adam, and the estimate is the mean DV bound (f-bound for "f") over
the last 10% of steps. Writes OUT/mine_check.json, OUT/mine_check.md and OUT/mine_check.png.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from fastinfo import atomic
from fastinfo.arguments import comma_list, float_between, int_at_least
from fastinfo.mine import MINE, ConcatCritic, SeparableCritic

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
    p = argparse.ArgumentParser(prog="python -m fastinfo.mine_check", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dims", default="1,5,20", type=comma_list(int_at_least(1)),
                   help="comma-separated dimensions d of x and of y")
    p.add_argument("--rhos", default="0.2,0.5,0.8,0.95", type=comma_list(float_between(-1, 1)),
                   help="comma-separated correlations rho of x_i and y_i, each in (-1, 1)")
    p.add_argument("--estimators", default=",".join(ESTIMATORS),
                   help=f"comma-separated estimators, of {', '.join(ESTIMATORS)}")
    p.add_argument("--steps", type=int_at_least(1), default=3000, help="training steps of each statistics network")
    p.add_argument("--batch-size", type=int_at_least(2), default=512,
                   help="samples of (x, y) a step (the shuffled marginals need two)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--out", default="runs/mine_check", help="folder for the table and the plot")
    return p


def main(argv=None) -> int:
    args = arg_parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dims, rhos = args.dims, args.rhos
    estimators = args.estimators.split(",")
    bad = set(estimators) - set(ESTIMATORS)
    if bad:
        print(f"error: unknown estimator(s) {', '.join(sorted(bad))}; accepted: {', '.join(ESTIMATORS)}",
              file=sys.stderr)
        return 2
    rows = []
    for d in dims:
        for rho in rhos:
            row = {"d": d, "rho": rho, "true": true_mi(d, rho)}
            for est in estimators:
                row[est] = estimate(d, rho, est, args.steps, args.batch_size, device=args.device)
            rows.append(row)
            print(json.dumps(row), flush=True)
    atomic.write_text(out / "mine_check.json", json.dumps({"steps": args.steps, "batch": args.batch_size,
                                                           "rows": rows}, indent=2) + "\n")
    lines = ["| d | rho | true MI | " + " | ".join(estimators) + " |", "|" + " --- |" * (3 + len(estimators))]
    for r in rows:
        cells = [f"{r[e]:.3f}" + (f" ({100 * (r[e] - r['true']) / r['true']:+.0f}%)" if r["true"] else "")
                 for e in estimators]
        lines.append(f"| {r['d']} | {r['rho']} | {r['true']:.3f} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    atomic.write_text(out / "mine_check.md", table)
    print(table)
    plot(rows, dims, estimators, out / "mine_check.png")
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
