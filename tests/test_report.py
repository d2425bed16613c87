"""The HTML report: content, mean ± std over seeds, and a real browser rendering it."""

import base64
import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from fastinfo import checkpoint, failure, report


def fake_run(path, model, seed, acc, dataset="mnist"):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model": model, "seed": seed, "preset": "paper",
                                                  "dataset": dataset}))
    (path / "eval.json").write_text(json.dumps({"c1_accuracy": acc, "fid": 10.0 + seed,
                                                "code_measure_spearman": {"c2": {"slant": 0.1, "thickness": 0.9}}}))
    Image.fromarray((np.random.default_rng(seed).random((60, 60)) * 255).astype(np.uint8)).save(
        path / "traverse_c1.png")
    return path


def test_report_tabulates_seeds_and_holds_its_figures(tmp_path):
    runs = [fake_run(tmp_path / f"infogan-s{s}", "infogan", s, a) for s, a in ((0, 0.9), (1, 0.7))]
    runs.append(fake_run(tmp_path / "gan-s0", "gan", 0, "n/a (no Q head trained)"))
    path = report.write_report(runs, tmp_path / "out")
    page = path.read_text()
    assert "0.800 ± 0.141" in page and "0.900, 0.700" in page and "n/a (no Q head trained)" in page
    # the page holds its figures: one file to move or send
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["index.html"]
    images = [base64.b64decode(part.split('"')[0]) for part in page.split('src="data:image/png;base64,')[1:]]
    assert images == [(run / "traverse_c1.png").read_bytes() for run in runs]
    assert "ρ(thickness)" in page
    assert report.main([str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    assert report.main([str(runs[0]), f"{runs[0]}/", str(runs[2]), "--out", str(tmp_path / "o")]) == 0
    assert "<td>infogan</td><td>1</td>" in (tmp_path / "o" / "index.html").read_text()


def test_report_averages_the_seeds_of_one_setting_only(tmp_path):
    runs = [fake_run(tmp_path / f"m{s}", "infogan", s, a) for s, a in ((0, 0.9), (1, 0.7))]
    runs += [fake_run(tmp_path / f"f{s}", "infogan", s, a, "fashion-mnist") for s, a in ((0, 0.6), (1, 0.4))]
    page = report.write_report(runs, tmp_path / "out").read_text()
    assert "<td>infogan · dataset=mnist</td><td>2</td><td>0.800 ± 0.141" in page
    assert "<td>infogan · dataset=fashion-mnist</td><td>2</td><td>0.500 ± 0.141" in page
    # another λ is another setting; another device or checkpoint cadence is not
    for run, (key, value) in zip(runs, [("lambda_cont", 0.1), ("device", "cuda"), ("lambda_cont", 1.0),
                                        ("ckpt_every", 7)]):
        cfg = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**cfg, key: value}))
    page = report.write_report(runs, tmp_path / "out").read_text()
    for label in ("dataset=mnist · lambda_cont=0.1", "dataset=mnist · lambda_cont=None",
                  "dataset=fashion-mnist · lambda_cont=1.0", "dataset=fashion-mnist · lambda_cont=None"):
        assert f"<td>infogan · {label}</td><td>1</td>" in page


def test_scores_against_known_factors_are_columns_only_where_a_run_has_them(tmp_path):
    runs = [fake_run(tmp_path / f"m{s}", "infogan", s, 0.9) for s in (0, 1)]
    page = report.write_report(runs, tmp_path / "out").read_text()
    assert "<th>mig</th>" not in page and "<th>factorvae_score</th>" not in page
    shapes = [fake_run(tmp_path / f"s{s}", "infogan", s, 0.5, "shapes") for s in (0, 1)]
    for run, (mig, fv) in zip(shapes, [(0.2, 0.6), (0.4, 0.8)]):
        scores = json.loads((run / "eval.json").read_text())
        (run / "eval.json").write_text(json.dumps({**scores, "mig": mig, "factorvae_score": fv,
                                                   "dci_disentanglement": 0.5}))
    page = report.write_report(runs + shapes, tmp_path / "out").read_text()
    assert "<th>fid</th><th>mig</th><th>factorvae_score</th><th>dci_disentanglement</th>" in page
    assert "0.300 ± 0.141" in page and "0.700 ± 0.141" in page  # the shapes runs' MIG and FactorVAE score


def test_report_shows_every_code_in_order(tmp_path):
    """Runs with more codes than the MNIST layout's three (--cat-sizes 10,5 --n-cont 3: c1..c5; c10+)."""
    run = fake_run(tmp_path / "infogan-s0", "infogan", 0, 0.9)
    for name in ("traverse_c10.png", "traverse_c2.png", "traverse_c5.png", "loss_curves.png"):
        shutil.copyfile(run / "traverse_c1.png", run / name)
    page = report.write_report([run], tmp_path / "out").read_text()
    assert [part.split('"')[0] for part in page.split('alt="')[1:]] == [
        "traverse_c1.png", "traverse_c2.png", "traverse_c5.png", "traverse_c10.png", "loss_curves.png"]



@pytest.mark.parametrize("name, text, msg", [
    ("eval.json", '{"c1_accuracy": 0.9', "eval.json is unreadable or corrupt"),
    ("config.json", "[1, 2]", "config.json is corrupt: it holds a list"),
    ("config.json", '{"model": "infogan"}', "config.json is not a fastinfo run's: it has no seed, preset, dataset"),
])
def test_report_names_a_broken_run_file(name, text, msg, tmp_path, capsys):
    good, broken = fake_run(tmp_path / "a", "infogan", 0, 0.9), fake_run(tmp_path / "b", "infogan", 1, 0.8)
    (broken / name).write_text(text)
    assert report.main([str(good), str(broken), "--out", str(tmp_path / "out")]) == 2
    assert msg in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_report_of_a_folder_of_runs_names_the_runs_in_it(tmp_path, capsys):
    runs = [fake_run(tmp_path / "sweep" / f"infogan-s{s}", "infogan", s, 0.9) for s in range(6)]
    args = [tmp_path / "sweep", runs[0], tmp_path / "none", "--out", tmp_path / "out"]
    assert report.main(list(map(str, args))) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'sweep'} holds no run (no config.json); the runs in it: "
        f"{', '.join(map(str, runs[:4]))} and 2 more\n"
        f"error: {tmp_path / 'none'} holds no run (no config.json)\n")
    assert not (tmp_path / "out").exists()


def test_report_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "out").write_text("")
    assert report.main([str(fake_run(tmp_path / "a", "gan", 0, 0.9)), "--out", str(tmp_path / "out")]) == 2
    assert f"cannot make the folder --out {tmp_path / 'out'}: a file has its name" in capsys.readouterr().err

def test_report_names_each_runs_step_and_metrics_older_than_it(tmp_path, capsys):
    """A run trained on after its evaluation: the page and the command say its metrics are older."""
    runs = [fake_run(tmp_path / f"infogan-s{s}", "infogan", s, 0.9) for s in (0, 1)]
    for run, evaluated in zip(runs, (25, 20)):
        checkpoint.save({"step": 25, "models": {}}, run / "checkpoint.pt")
        (run / "eval.json").write_text(json.dumps({"step": evaluated, "c1_accuracy": 0.9}))
    page = report.write_report(runs, tmp_path / "out").read_text()
    assert page.count("infogan · seed 0 · paper · mnist · step 25") == 1
    stale = f"its metrics are from step 20 of 25: python -m fastinfo.evaluate {runs[1]} updates them"
    assert page.count(stale) == 1 and capsys.readouterr().err == f"warning: {stale}\n"


def test_report_interrupted_keeps_the_page_from_before(tmp_path, monkeypatch, capsys):
    run = fake_run(tmp_path / "a", "gan", 0, 0.9)
    assert report.main([str(run), "--out", str(tmp_path / "out")]) == 0
    before = (tmp_path / "out" / "index.html").read_bytes()

    def interrupted_read(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "read_saved", interrupted_read)
    assert report.main([str(run), "--out", str(tmp_path / "out")]) == 130
    assert capsys.readouterr().err == (f"interrupted: no report was written to {tmp_path / 'out'} "
                                       "(a page there from before is whole)\n")
    assert (tmp_path / "out" / "index.html").read_bytes() == before


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    runs = [fake_run(tmp_path / "infogan-s0", "infogan", 0, 0.9)]
    path = report.write_report(runs, tmp_path / "out")
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1000,800",
                    path.as_uri()], check=True, timeout=120, capture_output=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10  # text, tables and the grid image: not a blank page
    assert (pixels < 128).mean() > 0.005


def test_failed_collapsed_and_diverged_runs_are_flagged_in_the_table_and_on_their_cards(tmp_path):
    """A run whose images all fall in one class can show a high c1 purity (0.922 was seen): the
    page must say it failed, and so for a run the failure check flagged while it trained."""
    ok = fake_run(tmp_path / "s0", "infogan", 0, 0.9)
    collapsed = fake_run(tmp_path / "s1", "infogan", 1, 0.2)
    result = json.loads((collapsed / "eval.json").read_text())
    (collapsed / "eval.json").write_text(json.dumps({**result, "c1_purity": 0.922, "classes_covered": 1,
                                                      "collapsed": True}))
    diverged = fake_run(tmp_path / "s2", "infogan", 2, 0.1)
    (diverged / "diverged").write_text("a loss became non-finite; see metrics.jsonl\n")
    d_won = fake_run(tmp_path / "s3", "infogan", 3, 0.3)
    failure.record(d_won, failure.Failure(251, 350, 0.07))
    page = report.write_report([ok, collapsed, diverged, d_won], tmp_path / "out").read_text()
    assert "<td><span class='failed'>3/4</span></td></tr>" in page
    assert "<p class='failed'>collapsed: its images cover 1 of 10 classes</p>" in page
    assert "<p class='failed'>diverged: a loss became non-finite</p>" in page
    assert ("<p class='failed'>failed at step 350: D(G(z)) averaged 0.070 over steps 251-350 (below 0.1): "
            "D has won and G has stopped learning</p>") in page
    assert page.count(" · FAILED</h3>") == 3
    page = report.write_report([ok], tmp_path / "out2").read_text()
    assert "<td>0/1</td></tr>" in page and "FAILED" not in page
