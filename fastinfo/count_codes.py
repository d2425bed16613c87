"""How many latent codes a data set needs, estimated without labels.

    python -m fastinfo.count_codes --out runs/count-017 --classes 0,1,7 --ks 2-6 --seeds 0-2 --steps 2000
    python -m fastinfo.count_codes --out runs/count-shapes --dataset shapes --ks 2-6 --steps 2000 --procs 2

It trains ordinary fastinfo runs (resumable and evaluable: the same command goes on where it
stopped) and reads Q's assignments of held-out images (the test split's first --held-out, labels
unread) to answer:
- K, the number of categories, by three estimators (fastinfo.categories): over a sweep of K
  (runs OUT/k<K>-s<seed>), the agreement of seeds and Q's information share; and the consensus
  of runs whose code has an oversized --k-max values (runs OUT/kmax<K>-s<seed>);
- how many continuous codes carry information, in the oversized runs, which have --n-cont codes:
  per code, the information Q recovers from generated images (its L_I over the last 5% of
  training) and how much moving the code from -1 to 1 changes the image. A code counts when its
  L_I is at least INFORMATIVE_NATS and its change at least CHANGE_SHARE of the most visible code's.
  Each code is named with the image property it moves most: on the shapes set the known factor
  (with the MIG), elsewhere the digit measure (slant, thickness, width, area).
  Both say how many codes G was given rather than how many the data needs (a uniform prior makes
  G show every code), so the count that can say "fewer" is the seeds' agreement: the canonical
  correlations between two oversized runs' codes on the held-out images, and how many reach
  fastinfo.factors.AGREED_CORRELATION (the median over pairs of runs).
Labels, where the data has them, only check the estimates afterwards (c1 accuracy per run).
Arguments after `--` go to every run's fastinfo.train. Writes OUT/count.json, OUT/count.md,
OUT/criteria.png, OUT/continuous.png and an HTML report of every run in OUT/report/.
"""

import argparse
import html
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fastinfo import atomic, categories, data, evaluate, plots, registry, report, runs, selection, sweep, train
from fastinfo.arguments import (
    ArgumentParser,
    FolderError,
    int_at_least,
    integer_ranges,
    interrupted,
    make_folder,
    seed_list,
    stops_as_on_ctrl_c,
)
from fastinfo.config import ConfigError, build_parser
from fastinfo.factors import AGREED_CORRELATION, agreed_dimensions

# the training settings this command gives each run itself, and the option a user sets them with
OWN_SETTINGS = {**sweep.SWEEP_SETTINGS, "model": "--model", "seed": "--seeds", "cat_sizes": "--ks and --k-max",
                "n_cont": "--n-cont (the oversized runs)", "classes": "--classes", "imbalance": "--imbalance"}
INFORMATIVE_NATS = 0.5  # L_I of a code Q reads to about a fifth of its range: U(-1, 1) cut into ~5 levels
CHANGE_SHARE = 0.25
GOES_ON = sweep.GOES_ON


def k_list(text: str) -> list[int]:
    """--ks: numbers of categories such as 2-8 or 2,3,5, each >= 2, at least two of them."""
    try:
        ks = sorted(set(integer_ranges(text, "K", "numbers of categories such as 2-8 or 2,3,5")))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if ks[0] < 2 or len(ks) < 2:
        raise argparse.ArgumentTypeError(f"expected two or more numbers of categories, each >= 2, got {text!r}")
    return ks


def jobs_of(args, out: Path, extra: list[str]) -> list[tuple]:
    """The runs to train, as fastinfo.sweep takes them: (folder, model, seed, steps, arguments)."""
    data_args = ["--dataset", args.dataset, "--classes", args.classes, "--imbalance", str(args.imbalance),
                 "--device", args.device, *extra]
    jobs = [(out / f"k{k}-s{seed}", args.model, seed, args.steps, [*data_args, "--cat-sizes", str(k)])
            for k in args.ks for seed in args.seeds]
    if args.k_max:
        jobs += [(out / f"kmax{args.k_max}-s{seed}", args.model, seed, args.steps,
                  [*data_args, "--cat-sizes", str(args.k_max), "--n-cont", str(args.n_cont)]) for seed in args.seeds]
    return jobs


def train_all(jobs: list[tuple], procs: int) -> dict[Path, int] | None:
    """Each run's exit code of training (0: trained); None when Ctrl-C or a signal stopped them."""
    if procs > 1 and sweep.run_parallel(jobs, procs):
        return None
    codes = {}
    for job in jobs:
        code = sweep.run_one(*job)
        if code == train.EXIT_INTERRUPTED:
            return None
        if code not in (0, train.EXIT_NON_FINITE, train.EXIT_FAILED):
            raise runs.RunError(f"{job[0]} ended with exit code {code}; its log says why")
        codes[job[0]] = code
    return codes


def training_seconds(run: Path) -> float | None:
    """The wall time of the run's last training process (timings.json), where it wrote one."""
    try:
        return float(json.loads((run / "timings.json").read_text())["since_start"]["end"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_run(run: Path, images: torch.Tensor, labels: torch.Tensor, device: str) -> dict:
    """One trained run's assignments of the held-out images and what they say."""
    cfg, model, state = runs.load_run(run, device=device)
    cat_logits, cont_means = selection.predicted_codes(model, images)
    k = model.spec.cat_sizes[0]
    probs = torch.softmax(cat_logits[:, :k].double(), 1).numpy()
    return {"run": run.name, "k": k, "seed": cfg.seed, "step": state["step"], "assignments": probs.argmax(1),
            "information_share": selection.information_score(probs) / float(np.log(k)),
            "used_categories": categories.used_categories(probs),
            # a set without classes has nothing to check the assignments against
            **({"c1_accuracy": evaluate.cluster_accuracy(probs.argmax(1), labels.numpy())}
               if data.labelled(cfg.dataset) else {}),
            "train_s": training_seconds(run), "cont_means": cont_means.double().numpy(), "model": model, "cfg": cfg}


def code_properties(row: dict, n_images: int) -> dict[str, dict]:
    """Per continuous code of a run's row, the image property it moves most: on a set with known
    factors (shapes, dSprites) the factor it carries the most information about (Q's codes on the n_images held-out
    images), elsewhere the digit measure its traversal correlates with most (Spearman)."""
    model, cfg = row["model"], row["cfg"]
    factor_names = data.factor_names(cfg)
    if factor_names:
        factors = data.known_factors(cfg, train=False)[:n_images].double().numpy()
        scores = evaluate.factor_information(row["cont_means"], factors, model.spec.code_names[model.spec.n_cat :],
                                             factor_names)
        return {code: {"property": max(info, key=info.get), "nats": max(info.values()), "mig": scores["mig"]}
                for code, info in scores["code_factor_information"].items()}
    rho = evaluate.continuous_code_scores(model)["code_measure_spearman"]
    return {code: {"property": max(r, key=lambda m: abs(r[m])), "spearman": max(r.values(), key=abs)}
            for code, r in rho.items()}


def continuous_count(row: dict, run: Path, n_images: int) -> dict:
    """What each continuous code of an oversized run carries, and how many count as used."""
    from fastinfo.factors import traversal_change

    model = row["model"]
    spec = model.spec
    names = spec.code_names[spec.n_cat :]
    info = evaluate.final_information(run, spec)
    change = traversal_change(model)
    props = code_properties(row, n_images)
    codes = {name: {"L_I": info.get(name, {}).get("L_I", float("nan")), "change": c, **props[name]}
             for name, c in zip(names, change)}
    top = max(change)
    for entry in codes.values():
        entry["informative"] = bool(entry["L_I"] >= INFORMATIVE_NATS and entry["change"] >= CHANGE_SHARE * top)
    return {"run": run.name, "codes": codes, "count": sum(e["informative"] for e in codes.values())}


def continuous_agreement(oversized: list[dict]) -> dict | None:
    """How many continuous dimensions the oversized runs (their rows) agree on (fastinfo.factors),
    or None with fewer than two of them."""
    if len(oversized) < 2:
        return None
    return {**agreed_dimensions([r["cont_means"] for r in oversized]), "threshold": AGREED_CORRELATION,
            "runs": len(oversized)}


def markdown(result: dict) -> str:
    """count.md: the estimates, the criterion per K, and the continuous codes."""
    est, lines = result["estimates"], [f"# How many codes: {result['data']}", ""]
    for name, e in est.items():
        lines.append(f"- **{name}**: K̂ = {e['k']} ({e['evidence']}; {e['runs']} runs, "
                     f"{e['train_s'] / 60:.1f} min of training on {result['device']})")
    if result["continuous"]:
        counts = [c["count"] for c in result["continuous"]]
        lines.append(f"- **continuous codes used**: {', '.join(map(str, counts))} of {result['n_cont']} "
                     f"(per oversized run)")
    agreed = result.get("continuous_agreement")
    if agreed:
        lines.append(f"- **continuous dimensions the seeds agree on**: {agreed['estimate']} of {result['n_cont']} "
                     f"(per pair of oversized runs {', '.join(map(str, agreed['counts']))}: canonical correlations "
                     f">= {agreed['threshold']} between their codes on the held-out images)")
    lines += ["", "| K | runs | agreement of seeds (mean ARI) | information / ln K | used categories | "
              "c1 accuracy (labels) |", "| --- | --- | --- | --- | --- | --- |"]
    for k, entry in result["per_k"].items():
        lines.append(f"| {k} | {entry['runs']} | {entry['agreement']} | {entry['information_share']} | "
                     f"{entry['used_categories']} | {entry['c1_accuracy']} |")
    if result["consensus_lifetimes"]:
        lines += ["", "Consensus tree lifetimes: " + ", ".join(
            f"{k}: {v:.3f}" for k, v in result["consensus_lifetimes"].items())]
    if agreed:
        lines += ["", "Canonical correlations between the oversized runs' continuous codes, per pair: " + "; ".join(
            ", ".join(f"{c:.2f}" for c in pair) for pair in agreed["correlations"])]
    for entry in result["continuous"]:
        lines += ["", f"Continuous codes of {entry['run']} (L_I >= {INFORMATIVE_NATS} nats and a change >= "
                      f"{CHANGE_SHARE:.0%} of the largest):", "",
                  "| code | L_I (nats) | traversal change | moves most | used |", "| --- | --- | --- | --- | --- |"]
        for code, c in entry["codes"].items():
            lines.append(f"| {code} | {c['L_I']:.3f} | {c['change']:.4f} | {c['property']} | "
                         f"{'yes' if c['informative'] else 'no'} |")
    return "\n".join(lines) + "\n"


def is_oversized(row: dict) -> bool:
    """Whether a run's row is of an oversized run (OUT/kmax<K>-s<seed>), not of the sweep over K."""
    return row["run"].startswith("kmax")


def estimate(rows: list[dict], args, device) -> dict:
    """The estimates and their evidence from the trained runs' rows."""
    swept = [r for r in rows if not is_oversized(r)]
    oversized = [r for r in rows if is_oversized(r)]
    by_k = {k: [r for r in swept if r["k"] == k] for k in args.ks}
    curve = categories.stability_curve({k: [r["assignments"] for r in rs] for k, rs in by_k.items() if len(rs) > 1})
    lifetimes = (categories.consensus_lifetimes([r["assignments"] for r in oversized], args.k_max)
                 if len(oversized) > 1 else {})
    seconds = {name: sum(r["train_s"] or 0 for r in rs)
               for name, rs in (("stability", swept), ("consensus", oversized))}
    estimates = {}
    if curve:
        k = categories.stability_estimate(curve)
        estimates["stability"] = {"k": k, "evidence": f"mean ARI of seeds {curve[k]['mean']:.3f} at K = {k}",
                                  "runs": len(swept), "train_s": seconds["stability"]}
    if lifetimes:
        k = categories.consensus_estimate(lifetimes)
        estimates["consensus"] = {"k": k, "evidence": f"lifetime {lifetimes[k]:.3f} of {k} clusters from "
                                                      f"{len(oversized)} runs of K = {args.k_max}",
                                  "runs": len(oversized), "train_s": seconds["consensus"]}
    shares = {k: statistics.mean(r["information_share"] for r in rs) for k, rs in by_k.items() if rs}
    if shares:
        k = categories.information_estimate(shares)
        estimates["information"] = {"k": k, "evidence": f"Q's information on real images {shares[k]:.3f} of ln {k}",
                                    "runs": len(swept), "train_s": seconds["stability"]}
    per_k = {}
    for k, rs in by_k.items():
        per_k[k] = {"runs": len(rs),
                    "agreement": f"{curve[k]['mean']:.3f} ± {curve[k]['std']:.3f}" if k in curve else "n/a",
                    "information_share": sweep.mean_std([r["information_share"] for r in rs]),
                    "used_categories": sweep.mean_std([r["used_categories"] for r in rs]),
                    "c1_accuracy": sweep.mean_std([r["c1_accuracy"] for r in rs if "c1_accuracy" in r])}
    return {"estimates": estimates, "stability": {str(k): v for k, v in curve.items()},
            "information_share": {str(k): v for k, v in shares.items()}, "per_k": per_k,
            "consensus_lifetimes": lifetimes, "device": str(device)}


def report_section(result: dict, out: Path) -> str:
    """The count's part of the HTML report: count.md's text and the criteria figure."""
    import base64

    figures = "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode((out / name).read_bytes()).decode("ascii")}" '
        f'alt="{name}"><figcaption>{name}</figcaption></figure>' for name in ("criteria.png", "continuous.png")
        if (out / name).is_file())
    return f"<h2>How many codes</h2><pre>{html.escape(markdown(result))}</pre>{figures}"


def count(args, extra: list[str]) -> int:
    """Train, estimate and write the outputs; the exit code."""
    started = time.monotonic()
    out = Path(args.out)
    jobs = jobs_of(args, out, extra)
    for job in {tuple(job[4]): job for job in jobs}.values():  # every kind of run's settings, before any trains
        train.make_config(train.parse_args(["--model", args.model, *job[4]])[0])
    if not registry.entry(args.model).infers_codes:
        raise ConfigError(f"--model {args.model} infers no codes from images; accepted: "
                          f"{', '.join(n for n in registry.names() if registry.entry(n).infers_codes)}")
    make_folder(out)
    codes = train_all(jobs, args.procs)
    if codes is None:
        return interrupted(GOES_ON)
    trained = [run for run, code in codes.items() if code == 0]
    if not trained:
        raise runs.RunError(f"no run under {out} trained to the end (each diverged or was stopped)")
    device = runs.resolve_device(args.device)
    cfg = runs.load_run_config(trained[0])
    images, labels = (t[: args.held_out] for t in data.load_split(cfg, train=False))
    rows = [read_run(run, images, labels, args.device) for run in trained]
    result = {"data": f"{args.dataset}, classes {args.classes}, imbalance {args.imbalance:g}", "steps": args.steps,
              "held_out": len(images), "n_cont": args.n_cont,
              "not_trained": [str(r) for r in codes if r not in trained],
              **estimate(rows, args, device)}
    oversized = [r for r in rows if is_oversized(r)]
    result["continuous"] = [continuous_count(r, out / r["run"], len(images)) for r in oversized]
    result["continuous_agreement"] = continuous_agreement(oversized)
    result["runs"] = [{k: v for k, v in r.items() if k not in ("assignments", "cont_means", "model", "cfg")}
                      for r in rows]
    plots.count_criteria({int(k): v for k, v in result["stability"].items()},
                         {int(k): v for k, v in result["information_share"].items()}, result["consensus_lifetimes"],
                         result["estimates"], out / "criteria.png")
    if result["continuous"]:
        names = list(result["continuous"][0]["codes"])
        mean_over_runs = {key: [statistics.mean(c["codes"][n][key] for c in result["continuous"]) for n in names]
                          for key in ("L_I", "change")}
        agreed = result["continuous_agreement"]
        plots.continuous_codes(names, mean_over_runs["L_I"], mean_over_runs["change"],
                               agreed and agreed["correlations"], AGREED_CORRELATION, out / "continuous.png")
    result["wall_s"] = time.monotonic() - started
    atomic.write_text(out / "count.json", json.dumps(result, indent=2, default=str) + "\n")
    atomic.write_text(out / "count.md", markdown(result))
    print(markdown(result))
    print(f"report: {report.write_report(trained, out / 'report', extra=report_section(result, out))}")
    return 0


def arg_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m fastinfo.count_codes", description=__doc__.split("\n")[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       epilog="Arguments after -- go to every run's python -m fastinfo.train.")
    p.add_argument("--out", required=True, help="folder for the runs and the estimate")
    p.add_argument("--model", default="infogan", help="a model that infers codes from images (Q or an encoder)")
    p.add_argument("--dataset", default="mnist", help=f"one of {', '.join(data.DATASET_NAMES)}")
    p.add_argument("--classes", default="all", help='the classes to keep, e.g. "0,1,7" or "0-4"')
    p.add_argument("--imbalance", type=float, default=1.0, help="the last kept class's share of its training images")
    p.add_argument("--ks", type=k_list, default="2-8", help="the sweep's numbers of categories")
    p.add_argument("--k-max", type=int_at_least(0), default=20,
                   help="values of the oversized code the consensus reads (0: no oversized runs)")
    p.add_argument("--n-cont", type=int_at_least(1), default=6, help="continuous codes of the oversized runs")
    p.add_argument("--seeds", type=seed_list, default="0-2", help="seeds of every setting, e.g. 0-2")
    p.add_argument("--steps", type=int_at_least(1), required=True, help="generator steps per run")
    p.add_argument("--held-out", type=int_at_least(10), default=2000, help="test images the runs assign")
    p.add_argument("--procs", type=int_at_least(1), default=1, help="train this many runs at once")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    return p


@stops_as_on_ctrl_c
def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = arg_parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    given = vars(build_parser().parse_args(extra))
    own = [k for k in OWN_SETTINGS if k in given]
    if own:
        print(f"error: count_codes sets {', '.join('--' + k.replace('_', '-') for k in own)} for every run: remove "
              f"{'them' if len(own) > 1 else 'it'} after `--` ({'; '.join(OWN_SETTINGS[k] for k in own)})",
              file=sys.stderr)
        return 2
    if len(args.seeds) < 2:
        print("error: --seeds: both estimators compare seeds; give two or more, e.g. 0-2", file=sys.stderr)
        return 2
    if args.k_max and args.k_max < 2:
        print(f"error: --k-max {args.k_max}: an oversized code has more values than the data's classes, e.g. 20 "
              "(0: none)", file=sys.stderr)
        return 2
    try:
        return count(args, extra)
    except (ConfigError, runs.RunError, data.DataError, FolderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return interrupted(GOES_ON)


if __name__ == "__main__":
    sys.exit(main())
