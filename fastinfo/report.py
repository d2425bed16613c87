"""One self-contained HTML page that puts runs side by side.

    python -m fastinfo.report RUN [RUN ...] --out report/

For every run: its traversal grids (the poster's layout), loss curves and L_I curve; a table of
the metrics in RUN/eval.json (run `python -m fastinfo.evaluate` first for the full set), and, where
several seeds of one model are given, mean ± std over them with the per-seed values. The page,
--out/index.html, holds its images: it opens from disk in a browser, no server needed, and can be
moved or sent as one file.
"""

import argparse
import base64
import html
import json
import statistics
import sys
from pathlib import Path

from fastinfo import atomic, checkpoint, data, failure
from fastinfo.arguments import ArgumentParser, FolderError, interrupted, make_folder, stops_as_on_ctrl_c
from fastinfo.config import RESUMABLE_OVERRIDES, ConfigError, not_a_run, read_saved

CURVES = ("reconstructions.png", "loss_curves.png", "info_curve.png", "mi_curve.png")
# settings that change how a run was carried out, not what it learnt: runs that differ only in
# these are seeds of one setting. Of those a resume may change, the length and the precision of
# training change what it learnt.
HOW_RUN = (RESUMABLE_OVERRIDES - {"steps", "epochs", "amp"}) | {"seed", "out"}
SCALARS = ("c1_accuracy", "c1_nmi", "c1_ari", "label_free_score", "c1_purity", "c1_distinct", "classes_covered",
           "disentanglement", "fid")
# scores against known factors (evaluate on --dataset shapes): columns only where a run has them
FACTOR_SCALARS = ("mig", "factorvae_score", "dci_disentanglement")
STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}th{background:#eee}
.runs{display:flex;flex-wrap:wrap;gap:2em}.run{border:1px solid #ddd;padding:1em}img{max-width:420px;display:block}
figcaption{font-size:80%;color:#555}.stale{color:#a40}.failed{color:#b00;font-weight:bold}"""


def load_run_summary(run: Path) -> dict:
    """ConfigError when the run's config.json or eval.json is unreadable or not a run's."""
    cfg = read_saved(run / "config.json")
    missing = [k for k in ("model", "seed", "preset", "dataset") if k not in cfg]
    if missing:
        raise ConfigError(f"{run / 'config.json'} is not a fastinfo run's: it has no {', '.join(missing)}")
    result = read_saved(run / "eval.json") if (run / "eval.json").is_file() else {}
    return {"run": run, "model": cfg["model"], "seed": cfg["seed"], "preset": cfg["preset"],
            "dataset": cfg["dataset"], "eval": result, "step": checkpoint.saved_step(run / "checkpoint.pt"),
            "setting": {k: v for k, v in cfg.items() if k not in HOW_RUN}}


def failures(s: dict) -> list[str]:
    """How the run failed, in words: the failure check flagged it while it trained (D won early),
    it collapsed (its generated images cover few classes; the evaluation's judgement) or it
    diverged (a non-finite loss stopped it; the sweep marks it)."""
    out = []
    found = failure.recorded(s["run"])
    if found is not None:
        out.append(f"failed at step {found.last}: {found.describe()}")
    if s["eval"].get("collapsed") is True:
        covered = s["eval"].get("classes_covered")
        setting = s["setting"]
        kept = data.kept_classes(setting.get("classes", "all"), s["dataset"])
        of = f": its images cover {covered} of {len(kept)} classes" if covered is not None else ""
        out.append("collapsed" + of)
    if (s["run"] / "diverged").is_file():
        out.append("diverged: a loss became non-finite")
    return out


def stale_metrics(s: dict) -> str | None:
    """What to say when the run's eval.json is from an earlier step than its checkpoint (it
    trained on after an evaluation)."""
    evaluated = s["eval"].get("step")
    if evaluated is None or not s["step"] or evaluated == s["step"]:
        return None
    return (f"its metrics are from step {evaluated} of {s['step']}: python -m fastinfo.evaluate {s['run']} "
            "updates them")


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v)) if v is not None else "–"


def metric_table(summaries: list[dict]) -> str:
    """One row per setting: the seeds of one setting are averaged, never runs that differ in
    anything but how they ran (HOW_RUN). A row names the model and the settings its runs have
    where other runs of the model differ."""
    scalars = SCALARS + tuple(k for k in FACTOR_SCALARS if any(k in s["eval"] for s in summaries))
    rows = ["<tr><th>model</th><th>runs</th>" + "".join(f"<th>{k}</th>" for k in scalars)
            + "<th>failed (D won early, collapsed or diverged)</th></tr>"]
    groups = {}
    for s in summaries:
        groups.setdefault(json.dumps(s["setting"], sort_keys=True), []).append(s)
    for runs in groups.values():
        same_model = [s["setting"] for s in summaries if s["model"] == runs[0]["model"]]
        keys = dict.fromkeys(k for setting in same_model for k in setting)
        label = [f"{k}={runs[0]['setting'].get(k)}" for k in keys
                 if len({json.dumps(setting.get(k)) for setting in same_model}) > 1]
        model = " · ".join([runs[0]["model"], *label])
        cells = []
        for k in scalars:
            vals = [s["eval"].get(k) for s in runs]
            nums = [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(nums) > 1:
                spread = ", ".join(f"{v:.3f}" for v in nums)
                cells.append(f"{statistics.mean(nums):.3f} ± {statistics.stdev(nums):.3f}"
                             f"<br><small>{spread}</small>")
            else:
                cells.append(_fmt(vals[0]) if vals else "–")
        failed = [s for s in runs if failures(s)]
        failed_cell = f"<span class='failed'>{len(failed)}/{len(runs)}</span>" if failed else f"0/{len(runs)}"
        rows.append(f"<tr><td>{html.escape(model)}</td><td>{len(runs)}</td>"
                    + "".join(f"<td>{c}</td>" for c in cells) + f"<td>{failed_cell}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def correlation_table(s: dict) -> str:
    rho = s["eval"].get("code_measure_spearman")
    if not rho:
        return ""
    measures = list(next(iter(rho.values())))
    head = "<tr><th>code</th>" + "".join(f"<th>ρ({m})</th>" for m in measures) + "</tr>"
    body = "".join(f"<tr><td>{c}</td>" + "".join(f"<td>{rho[c][m]:+.2f}</td>" for m in measures) + "</tr>"
                   for c in rho)
    return f"<table>{head}{body}</table>"


def figures(run: Path) -> list[str]:
    """The run's traversal grids, one per code in the codes' order (c10 after c9), then its curves."""
    grids = sorted((p.name for p in run.glob("traverse_c*.png") if p.stem[len("traverse_c"):].isdigit()),
                   key=lambda name: int(Path(name).stem[len("traverse_c"):]))
    return grids + [name for name in CURVES if (run / name).is_file()]


def run_block(s: dict) -> str:
    """One run's part of the page: its title and step, its correlation table and its figures,
    each PNG inside the page."""
    figs = []
    for name in figures(s["run"]):
        png = base64.b64encode((s["run"] / name).read_bytes()).decode("ascii")
        figs.append(f'<figure><img src="data:image/png;base64,{png}" alt="{name}">'
                    f"<figcaption>{name}</figcaption></figure>")
    title = f"{s['model']} · seed {s['seed']} · {s['preset']} · {s['dataset']}"
    if s["step"]:
        title += f" · step {s['step']}"
    stale = stale_metrics(s)
    if stale:
        print(f"warning: {stale}", file=sys.stderr)
    note = f"<p class='stale'>{html.escape(stale)}</p>" if stale else ""
    failed = failures(s)
    note += "".join(f"<p class='failed'>{html.escape(why)}</p>" for why in failed)
    if failed:
        title += " · FAILED"
    return (f'<div class="run"><h3>{html.escape(title)}</h3><p><small>{html.escape(str(s["run"]))}</small></p>'
            f"{note}{correlation_table(s)}{''.join(figs)}</div>")


def write_report(runs: list[Path], out: Path, extra: str = "") -> Path:
    """out/index.html for the runs; extra: HTML a command puts before the metrics (its own
    findings over the runs)."""
    summaries = [load_run_summary(r) for r in runs]
    make_folder(out)
    blocks = [run_block(s) for s in summaries]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>fastinfo report</title>"
            f"<style>{STYLE}</style></head><body><h1>fastinfo report</h1>{extra}"
            f"<h2>Metrics</h2>{metric_table(summaries)}"
            "<p>c1_accuracy: Q's category vs the test labels (Hungarian); label_free_score: Q's mutual "
            "information between real training images and c1, in nats (at most ln 10 = 2.303), read without "
            "labels; c1_purity: share of the majority class "
            "among images generated with one c1 value (the project's classifier); disentanglement: gap between "
            "the two codes most correlated with slant and with thickness; fid: Fréchet distance in the "
            "classifier's features.</p>"
            f"<h2>Runs</h2><div class='runs'>{''.join(blocks)}</div></body></html>")
    path = out / "index.html"
    atomic.write_text(path, page)
    return path


def arg_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m fastinfo.report", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders written by fastinfo.train")
    p.add_argument("--out", default="report", help="folder for the page, index.html")
    return p


@stops_as_on_ctrl_c
def main(argv=None) -> int:
    args = arg_parser().parse_args(argv)
    missing = [why for why in map(not_a_run, map(Path, args.runs)) if why]
    if missing:
        print("\n".join(f"error: {why}" for why in missing), file=sys.stderr)
        return 2
    try:
        # a run named twice (runs/*/ and runs/a) is one run, not two seeds
        path = write_report(list(dict.fromkeys(Path(r) for r in args.runs)), Path(args.out))
    except (ConfigError, FolderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write the report to {args.out}: {e.strerror} ({e.filename})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return interrupted(f"no report was written to {args.out} (a page there from before is whole)")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
