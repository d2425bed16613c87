"""Train several models over several seeds, evaluate them alike, and tabulate stability.

    python -m fastinfo.sweep --models infogan,infowgan --seeds 0,1,2 --steps 3000 --out runs/sweep
    python -m fastinfo.sweep --models gan,infogan --seeds 0-4 --steps 3000 --out runs/sweep -- --batch-size 64

Arguments after `--` go to every `fastinfo.train` run (not those the sweep sets itself: --model,
--seed, --out, --steps, --epochs, --dataset, --device, --resume). A sweep can be re-run until it completes:
interrupted runs are resumed, runs with fewer than --steps train on from their checkpoint, and a
run already evaluated at its last step with the same settings keeps its scores. A resumed run
takes the arguments after `--` that a resume may change (--amp, --compile, ...) and refuses the
others where they differ from its own settings. Writes OUT/summary.json and
OUT/summary.md: per model, c1 accuracy and the label-free score (Q models) and c1 purity (all
models) as mean ± std over seeds, how many runs failed (D won early: fastinfo.failure),
collapsed (fewer than 8 classes covered by generated images, judged by the project's
classifier) or diverged (a non-finite loss), the variance of the D and G losses over the last
quarter of training, continuous-code disentanglement and Fréchet distance; the runs ranked by
the label-free score, with the one it selects named; and an HTML report of all runs in
OUT/report/. --replace-failed trains the next seed in place of a run the failure check stopped.
"""

import argparse
import json
import shlex
import signal
import statistics
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from fastinfo import (
    atomic,
    checkpoint,
    classifier,
    data,
    failure,
    metrics_log,
    registry,
    report,
    runs,
    selection,
    train,
)
from fastinfo.arguments import (
    ArgumentParser,
    FolderError,
    comma_list,
    int_at_least,
    interrupted,
    make_folder,
    seed_list,
    signals_handled_by,
    stops_as_on_ctrl_c,
)
from fastinfo.config import ConfigError, build_parser, read_saved
from fastinfo.evaluate import evaluate_model

# training settings the sweep gives each run itself, and where a user sets them
SWEEP_SETTINGS = {
    "model": "--models", "seed": "--seeds", "out": "each run's folder is in --out", "steps": "--steps",
    "epochs": "--steps", "dataset": "--dataset", "device": "--device", "resume": "a re-run resumes every run",
}
# what a sweep stopped by Ctrl-C keeps
GOES_ON = ("each run keeps its last checkpoint, and each run evaluated its eval.json; the same command goes on "
           "from there")


def sweep_settings_in(extra: list[str]) -> list[str]:
    """The settings among the training arguments that the sweep sets for every run itself."""
    given = vars(build_parser().parse_args(extra))
    return [k for k in SWEEP_SETTINGS if k in given]


def tail_variance(run: Path, key: str, fraction: float = 0.25) -> float | None:
    values = [r[key] for r in metrics_log.read(run / "metrics.jsonl") if key in r]  # a VAE has no loss_d
    tail = values[int(len(values) * (1 - fraction)) :]
    return statistics.pvariance(tail) if len(tail) > 1 else None


def train_args(run: Path, model: str, seed: int, steps: int, extra: list[str]) -> list[str] | None:
    """fastinfo.train's arguments that bring this run to `steps`: a resume if it was started
    (also one killed before its first checkpoint, or finished at fewer steps); None if it has
    the steps already or diverged. A resume gets the training arguments too: those a resume may
    change (--amp, --compile, ...) apply, and any other that differs from the run's is refused."""
    if (run / "diverged").is_file() or ("--stop-on-failure" in extra and failure.recorded(run)):
        return None
    common = ["--steps", str(steps), "--no-eval-at-end", "--no-progress", *extra]
    if (run / "config.json").is_file():
        # a run without a readable checkpoint is resumed too, which says why
        return None if checkpoint.saved_step(run / "checkpoint.pt") >= steps else ["--resume", str(run), *common]
    return ["--model", model, "--seed", str(seed), "--out", str(run), *common]


def record_exit(run: Path, code: int) -> int:
    if code == train.EXIT_NON_FINITE:
        run.mkdir(parents=True, exist_ok=True)
        (run / "diverged").write_text("a loss became non-finite; see metrics.jsonl\n")
    return code


def run_one(run: Path, model: str, seed: int, steps: int, extra: list[str]) -> int:
    """Train in this process; the exit code of training (also of a run that ended before: 0, or
    how it ended)."""
    argv = train_args(run, model, seed, steps, extra)
    if argv is None:
        if (run / "diverged").is_file():
            return train.EXIT_NON_FINITE
        return train.EXIT_FAILED if "--stop-on-failure" in extra and failure.recorded(run) else 0
    return record_exit(run, train.main(argv))


def run_parallel(jobs: list[tuple], n_procs: int, gpus: list[int] | None = None) -> bool:
    """Train the runs in n_procs processes at once (several seeds on one big card, CPU cores, or
    with gpus each run on the one of those GPUs that holds the fewest runs then); whether SIGINT
    or SIGTERM stopped them. Such a signal goes on to every training process, which writes its
    checkpoint and ends, and no further run starts: also where it reached this process alone
    (`kill PID`), not its process group as Ctrl-C does."""
    # reentrant: a second Ctrl-C may run the handler again inside the first
    children, lock, stopped = [], threading.RLock(), threading.Event()
    load = dict.fromkeys(gpus or [], 0)  # runs on each GPU now

    def launch(job):
        argv = train_args(*job)
        with lock:
            if argv is None or stopped.is_set():
                return
            gpu = min(load, key=load.get) if load else None
            if gpu is not None:  # the last --device on the command line is the one taken
                load[gpu] += 1
                argv = [*argv, "--device", f"cuda:{gpu}"]
            children.append(subprocess.Popen([sys.executable, "-m", "fastinfo.train", *argv]))
            child = children[-1]
        code = child.wait()
        if gpu is not None:
            with lock:
                load[gpu] -= 1
        record_exit(job[0], code)

    def stop(_signum, _frame):
        stopped.set()
        with lock:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGINT)

    with signals_handled_by(stop), ThreadPoolExecutor(n_procs) as pool:
        list(pool.map(launch, jobs))
    return stopped.is_set()


class Replacements:
    """With --replace-failed, the seeds that replace runs the failure check stopped: per model the
    next seeds after the largest asked for, at most as many as there are seeds."""

    def __init__(self, args):
        self.enabled, self.limit = args.replace_failed, len(args.seeds)
        self.next_seed = dict.fromkeys(args.models, max(args.seeds) + 1)
        self.replaced: dict[tuple[str, int], int] = {}  # (model, new seed): the seed it replaces

    def replace(self, model: str, seed: int) -> int | None:
        """The seed that replaces model's run of seed; None without --replace-failed or past the limit."""
        if not self.enabled or sum(m == model for m, _ in self.replaced) >= self.limit:
            return None
        new = self.next_seed[model]
        self.next_seed[model] += 1
        self.replaced[model, new] = seed
        return new

    def of(self, model: str, seed: int) -> dict:
        """{"replaces": the seed this run replaces}, or {}."""
        old = self.replaced.get((model, seed))
        return {} if old is None else {"replaces": old}


def evaluation(run: Path, row: dict, clf, args) -> dict:
    """row with the run's scores, kept in its eval.json: those saved there when a sweep with the
    same evaluation settings made them at the run's last step, else new ones."""
    settings = {"samples_per_value": args.samples_per_value, "fid_samples": args.fid_samples}
    try:
        saved = read_saved(run / "eval.json")
    except ConfigError:
        saved = {}
    step = checkpoint.saved_step(run / "checkpoint.pt")
    if saved.get("eval_settings") == settings and saved.get("step") == step:
        return {**saved, **row}
    _, m, state = runs.load_run(run, device=args.device)
    row = {**row, **evaluate_model(m, m.cfg, clf, args.samples_per_value, full=True, run=run,
                                   fid_samples=args.fid_samples), "step": state["step"], "eval_settings": settings}
    atomic.write_text(run / "eval.json", json.dumps(row, indent=2) + "\n")
    return row


def steps_in_summary(rows: list[dict], steps: int) -> str:
    """The evaluated runs' steps: --steps, unless a run had trained more before this sweep."""
    more = sorted({r["step"] for r in rows if r.get("step", steps) != steps})
    return str(steps) if not more else f"{steps} (--steps) or {', '.join(map(str, more))}"


def mean_std(values: list[float]) -> str:
    if not values:
        return "n/a"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {std:.3f}"


def trained(row: dict) -> bool:
    """Whether a run trained to the end: it neither diverged nor was stopped by the failure check."""
    return not row["diverged"] and not row.get("stopped", False)


def add_agreement(rows: list[dict], out: Path, device) -> None:
    """Give each trained run of a Q model its agreement with the model's other trained runs
    (fastinfo.selection), where there are two or more."""
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == model and trained(r) and isinstance(r.get("label_free_score"), float)]
        if len(rs) < 2:
            continue
        assignments = {}
        for r in rs:
            cfg, m, _ = runs.load_run(out / run_name(r), device=device)
            assignments[run_name(r)] = selection.training_probabilities(m, cfg).argmax(1)
        scores = selection.agreement(assignments)
        for r in rs:
            r["agreement"] = scores[run_name(r)]


def selected_runs(rows: list[dict]) -> dict[str, dict]:
    """Per model, the run with the highest label-free score among those that trained and that the
    failure check did not flag: the run a user without labels would keep. (Collapse is not looked
    at: the classifier that judges it learnt from labels.)"""
    best = {}
    for r in rows:
        if (trained(r) and not r.get("failed")
                and isinstance(r.get("label_free_score"), float)
                and r["label_free_score"] > best.get(r["model"], {}).get("label_free_score", float("-inf"))):
            best[r["model"]] = r
    return best


def selection_text(rows: list[dict], out: Path) -> str:
    """The runs ranked by the label-free score, the selected one named, and how well the score
    ranked them by c1 accuracy (Spearman, where there are labels to check it with)."""
    from scipy.stats import spearmanr

    lines = []
    for model, best in selected_runs(rows).items():
        rs = sorted((r for r in rows if r["model"] == model and isinstance(r.get("label_free_score"), float)),
                    key=lambda r: -r["label_free_score"])
        lines.append(f"**{model}: selected {out / run_name(best)}** (label-free score {best['label_free_score']:.3f} "
                     f"of {best['label_free_score_max']:.3f} nats; c1 accuracy {three_places(best['c1_accuracy'])})\n")
        lines.append("| run | label-free score | agreement with the other runs | c1 accuracy | failed (D won early) |\n"
                     "| --- | --- | --- | --- | --- |")
        lines += [f"| {run_name(r)} | {r['label_free_score']:.3f} | {r.get('agreement', float('nan')):.3f} | "
                  f"{three_places(r['c1_accuracy'])} | {'yes' if r.get('failed') else 'no'} |" for r in rs]
        for key, name in (("label_free_score", "label-free score"), ("agreement", "agreement")):
            scored = [r for r in rs if key in r and isinstance(r["c1_accuracy"], float)]
            if len(scored) > 2:
                rho = spearmanr([r[key] for r in scored], [r["c1_accuracy"] for r in scored]).statistic
                lines.append(f"\nSpearman correlation of the {name} with c1 accuracy over these {len(scored)} runs: "
                             f"{rho:+.2f}")
        lines.append("")
    return "\n".join(lines)


def three_places(value) -> str:
    """A score to three decimals, or "n/a" where the run has none (a set without classes)."""
    return f"{value:.3f}" if isinstance(value, float) else "n/a"


def run_name(row: dict) -> str:
    return f"{row['model']}-s{row['seed']}"


def summarise(rows: list[dict]) -> tuple[list[dict], str]:
    factor_columns = [k for k in report.FACTOR_SCALARS if any(k in r for r in rows)]
    header = ("| model | runs | c1 accuracy | label-free score | c1 purity | classes covered | failed (D won early) "
              "| collapsed | diverged | var loss_d (last 25%) | var loss_g (last 25%) | disentanglement "
              "| Fréchet distance |" + "".join(f" {k} |" for k in factor_columns))
    table, lines = [], [header, "|" + " --- |" * header.count("|", 1)]
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == model]
        ok = [r for r in rs if trained(r)]
        acc, score, purity = ([r[k] for r in ok if isinstance(r.get(k), float)]
                              for k in ("c1_accuracy", "label_free_score", "c1_purity"))
        entry = {
            "model": model, "runs": len(ok),
            "c1_accuracy": mean_std(acc),
            "label_free_score": mean_std(score),
            "c1_purity": mean_std(purity),
            "classes_covered": mean_std([r["classes_covered"] for r in ok if "classes_covered" in r]),
            "failed": f"{sum(bool(r.get('failed')) for r in rs)}/{len(rs)}"
                      + (f" ({sum(r.get('stopped', False) for r in rs)} stopped and replaced)"
                         if any(r.get("stopped") for r in rs) else ""),
            # judged by the classifier, which a set without classes has not
            "collapsed": (f"{sum(r['collapsed'] for r in ok)}/{len(ok)}" if all("collapsed" in r for r in ok)
                          else "n/a"),
            "diverged": f"{sum(r['diverged'] for r in rs)}/{len(rs)}",
            "var_loss_d": mean_std([r["var_loss_d"] for r in ok if r["var_loss_d"] is not None]),
            "var_loss_g": mean_std([r["var_loss_g"] for r in ok if r["var_loss_g"] is not None]),
            "disentanglement": mean_std([r["disentanglement"] for r in ok if "disentanglement" in r]),
            "fid": mean_std([r["fid"] for r in ok if "fid" in r]),
        }
        entry.update({k: mean_std([r[k] for r in ok if k in r]) for k in factor_columns})
        table.append(entry)
        lines.append("| " + " | ".join(str(v) for v in entry.values()) + " |")
    return table, "\n".join(lines) + "\n"


def arg_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m fastinfo.sweep", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                epilog="Arguments after -- go to every run's python -m fastinfo.train.")
    p.add_argument("--models", default="gan,infogan", type=comma_list(str),
                   help=f"comma-separated models, of {', '.join(registry.names())}")
    p.add_argument("--seeds", default="0-2", type=seed_list, help="e.g. 0,1,2 or 0-4")
    p.add_argument("--steps", type=int_at_least(1), required=True, help="generator steps per run")
    p.add_argument("--out", required=True, help="sweep folder")
    p.add_argument("--dataset", default="mnist", help=f"one of {', '.join(data.DATASET_NAMES)}")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--samples-per-value", type=int_at_least(1), default=200, help="generated images per c1 value")
    p.add_argument("--fid-samples", type=int_at_least(2), default=10000,
                   help="generated images for the Fréchet distance")
    p.add_argument("--procs", type=int_at_least(1), default=None,
                   help="train this many runs at once, each in its own process (default: 1, with --gpus one a GPU)")
    p.add_argument("--gpus", type=comma_list(int_at_least(0)), default=None,
                   help="spread the runs over these GPUs (e.g. 0,1,2,3), each run on one")
    p.add_argument("--print-commands", action="store_true",
                   help="print each run's training command, one a line (a scheduler's job array), and train "
                        "nothing; the same sweep without this option then evaluates and tabulates them")
    p.add_argument("--replace-failed", action="store_true",
                   help="stop runs the failure check flags (D won early: --stop-on-failure) and train the next seed "
                        "in their place, at most as many as --seeds gives")
    return p


@stops_as_on_ctrl_c
def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    given = list(argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    args = arg_parser().parse_args(argv)
    args.argv = given
    if args.gpus and args.device not in ("auto", "cuda"):
        print(f"error: --gpus places each run on a GPU, which --device {args.device} contradicts: leave --device "
              "out (or give cuda)", file=sys.stderr)
        return 2
    args.procs = args.procs or (len(args.gpus) if args.gpus else 1)
    own = sweep_settings_in(extra)
    if own:
        print(f"error: the sweep sets {', '.join('--' + k.replace('_', '-') for k in own)} for every run: "
              f"remove {'them' if len(own) > 1 else 'it'} after `--` ({'; '.join(SWEEP_SETTINGS[k] for k in own)})",
              file=sys.stderr)
        return 2
    try:
        stop = ["--stop-on-failure"] if args.replace_failed else []
        return sweep(args, ["--dataset", args.dataset, "--device", args.device, *extra, *stop])
    except (ConfigError, runs.RunError, data.DataError, FolderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return interrupted(GOES_ON)


def sweep(args, extra: list[str]) -> int:
    """Train, evaluate and summarise the runs; the exit code."""
    # every run's settings and the folder, checked before the classifier trains and any run starts
    configs = [train.make_config(train.parse_args(["--model", model, *extra])[0]) for model in args.models]
    out = Path(args.out)
    jobs = [(out / f"{model}-s{seed}", model, seed, args.steps, extra)
            for model in args.models for seed in args.seeds]
    if args.print_commands:
        print_commands(jobs, args.argv)
        return 0
    device = runs.resolve_device(args.device)
    make_folder(out)
    clf = clf_acc = None
    if data.labelled(args.dataset):
        clf, clf_acc = classifier.load_or_train(args.dataset, device, configs[0].data_root)
        print(f"classifier test accuracy on {args.dataset}: {clf_acc:.4f}")
    rows, replacements = [], Replacements(args)
    while jobs:  # a round: the runs, then the replacements of those the failure check stopped
        if (args.procs > 1 or args.gpus) and run_parallel(jobs, args.procs, args.gpus):
            return interrupted(GOES_ON)
        next_round = []
        for run, model, seed, _, _ in jobs:
            code = run_one(run, model, seed, args.steps, extra)
            if code == train.EXIT_INTERRUPTED:
                return interrupted(GOES_ON)
            if code not in (0, train.EXIT_NON_FINITE, train.EXIT_FAILED):
                return code
            found = failure.recorded(run)
            row = {"model": model, "seed": seed, "diverged": code == train.EXIT_NON_FINITE,
                   "stopped": code == train.EXIT_FAILED, "failed": found.describe() if found else False,
                   **replacements.of(model, seed)}
            if trained(row):
                row = evaluation(run, row, clf, args)
            row["var_loss_d"], row["var_loss_g"] = tail_variance(run, "loss_d"), tail_variance(run, "loss_g")
            if row["stopped"]:
                new_seed = replacements.replace(model, seed)
                if new_seed is not None:
                    row["replaced_by"] = new_seed
                    next_round.append((out / f"{model}-s{new_seed}", model, new_seed, args.steps, extra))
                    print(f"{model} seed {seed} failed ({row['failed']}): replaced by seed {new_seed}")
            rows.append(row)
            print(json.dumps(row))
        jobs = next_round
    add_agreement(rows, out, device)
    table, markdown = summarise(rows)
    selected = {model: str(out / run_name(r)) for model, r in selected_runs(rows).items()}
    atomic.write_text(out / "summary.json", json.dumps({"classifier_accuracy": clf_acc, "steps": args.steps,
                                                        "runs": rows, "table": table, "selected": selected},
                                                       indent=2) + "\n")
    header = f"{steps_in_summary(rows, args.steps)} generator steps per run on {args.dataset}, device {device}\n\n"
    markdown += "\n" + selection_text(rows, out)
    atomic.write_text(out / "summary.md", header + markdown)
    print(header + markdown)
    finished = [out / run_name(r) for r in rows if trained(r)]
    if finished:
        print(f"report: {report.write_report(finished, out / 'report')}")
    return 0


def print_commands(jobs: list[tuple], sweep_argv: list[str]) -> None:
    """Each job's training command on stdout, one a line (none for a run that has its steps);
    on stderr, the sweep command (sweep_argv without --print-commands) to run when they have
    finished, which evaluates and tabulates them."""
    for job in jobs:
        argv = train_args(*job)
        if argv is not None:
            print(shlex.join(["python", "-m", "fastinfo.train", *argv]))
    again = shlex.join(["python", "-m", "fastinfo.sweep", *(a for a in sweep_argv if a != "--print-commands")])
    print(f"when every command has finished, this evaluates and tabulates the runs: {again}", file=sys.stderr)


def cli() -> None:
    """The command line (`python -m fastinfo.sweep`, `fastinfo-sweep`): main() and its exit code."""
    # a run's shapes are fixed: cuDNN times its convolution algorithms once and keeps the fastest
    torch.backends.cudnn.benchmark = True
    sys.exit(main())


if __name__ == "__main__":
    cli()
