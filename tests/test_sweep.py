"""The classifier, the generated-class scores and the resumable multi-seed sweep."""

import dataclasses
import functools
import json
import os
import signal
import sys
import threading
import time

import pytest
import torch

from fastinfo import classifier, data, evaluate, failure, runs, sweep, train

pytestmark = pytest.mark.usefixtures("synthetic_mnist")

REAL_LOAD = data.load  # bound before any test replaces it


def test_classifier_learns_synthetic_classes():
    labels = torch.arange(256) % 10
    images = torch.zeros(256, 28, 28, dtype=torch.uint8)
    for i, k in enumerate(labels.tolist()):  # class k: a 4x4 square at one of 10 spots, 5+ px apart
        r, c = 3 + 12 * (k // 5), 1 + 5 * (k % 5)
        images[i, r : r + 4, c : c + 4] = 255
    clf = classifier.fit(images, labels, "cpu", epochs=6, batch_size=32)
    assert classifier.accuracy(clf, images, labels) > 0.9
    assert clf.features(torch.zeros(2, 1, 28, 28)).shape == (2, 128)


def test_load_or_train_caches(tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    real_fit = classifier.fit

    def fit(images, labels, device, **kw):
        calls["n"] += 1
        return real_fit(images[:64], labels[:64], device, epochs=1, batch_size=32)

    monkeypatch.setattr(classifier, "fit", fit)
    _, acc = classifier.load_or_train("mnist", "cpu", cache=tmp_path)
    # a first use says what takes the time, and that it happens once
    assert capsys.readouterr().err == (f"training the mnist classifier that judges generated images (once: it is "
                                       f"cached in {tmp_path / 'classifier-mnist.pt'})\n")
    _, acc2 = classifier.load_or_train("mnist", "cpu", cache=tmp_path)
    assert capsys.readouterr().err == ""
    assert calls["n"] == 1 and acc == acc2 and (tmp_path / "classifier-mnist.pt").is_file()
    # a cache file that is corrupt, or holds other weights, is trained again and replaced
    for bad in (b"cut short", None):
        if bad is None:
            torch.save({"step": 0, "models": {"classifier": {"w": torch.zeros(1)}}, "test_accuracy": 0.5},
                       tmp_path / "classifier-mnist.pt")
        else:
            (tmp_path / "classifier-mnist.pt").write_bytes(bad)
        calls["n"] = 0
        assert classifier.load_or_train("mnist", "cpu", cache=tmp_path)[1] == acc and calls["n"] == 1
        assert "warning: the cached classifier" in capsys.readouterr().err
        classifier.load_or_train("mnist", "cpu", cache=tmp_path)
        assert calls["n"] == 1


def test_generated_class_scores_of_a_controlled_generator():
    class Perfect:
        """A 'model' whose c1 value k always yields class k's image."""

        spec = runs.latent_spec(train.make_config({}))
        device = torch.device("cpu")

        def generate(self, z, cat, cont):
            return (cat[:, :1].float().view(-1, 1, 1, 1) * torch.ones(1, 1, 28, 28)) / 10

    class ReadsPixel(torch.nn.Module):
        head = torch.nn.Linear(1, 10)

        def forward(self, x):
            k = (x[:, 0, 0, 0] * 10).round().long()
            return torch.nn.functional.one_hot(k, 10).float()

    scores = evaluate.generated_class_scores(Perfect(), ReadsPixel(), list(range(10)), n_per_value=20)
    assert scores == {"c1_purity": 1.0, "c1_distinct": 10, "classes_covered": 10, "collapsed": False}

    # trained on three digits: covering those three is all there is to cover
    subset = evaluate.generated_class_scores(Perfect(), ReadsPixel(), [0, 1, 7], n_per_value=20)
    assert subset["classes_covered"] == 0 and subset["collapsed"]  # a tenth each: under half of a third

    class ThreeDigits(Perfect):
        def generate(self, z, cat, cont):
            return torch.tensor([0.0, 0.1, 0.7])[cat[:, 0] % 3].view(-1, 1, 1, 1) * torch.ones(1, 1, 28, 28)

    subset = evaluate.generated_class_scores(ThreeDigits(), ReadsPixel(), [0, 1, 7], n_per_value=20)
    assert subset["classes_covered"] == 3 and not subset["collapsed"] and subset["c1_distinct"] == 3


def test_without_a_categorical_code_only_the_classes_covered_are_scored(tmp_path, monkeypatch):
    """c1 purity of a model with no categorical code would be that of ten batches of one
    distribution: "n/a", in eval.json, the report and the sweep's summary alike."""

    class NoCode:
        spec = runs.latent_spec(train.make_config({"cat_sizes": (), "n_cont": 2}))
        device = torch.device("cpu")

        def generate(self, z, cat, cont):
            return torch.zeros(len(z), 1, 28, 28)

    class AlwaysThree(torch.nn.Module):
        head = torch.nn.Linear(1, 10)

        def forward(self, x):
            return torch.nn.functional.one_hot(torch.full((len(x),), 3), 10).float()

    scores = evaluate.generated_class_scores(NoCode(), AlwaysThree(), list(range(10)), n_per_value=20)
    assert scores == {"c1_purity": "n/a (no categorical code)", "c1_distinct": "n/a (no categorical code)",
                      "classes_covered": 1, "collapsed": True}
    row = {"model": "infogan", "diverged": False, "c1_accuracy": "n/a (no categorical code)", **scores,
           "var_loss_d": None, "var_loss_g": None}
    (entry,), _ = sweep.summarise([row, row])
    assert entry["c1_purity"] == entry["c1_accuracy"] == "n/a" and entry["classes_covered"] == "1.000 ± 0.000"
    assert "mig" not in entry
    (entry,), table = sweep.summarise([{**row, "mig": 0.25, "factorvae_score": 0.5}, {**row, "mig": 0.75}])
    assert entry["mig"] == "0.500 ± 0.354" and entry["factorvae_score"] == "0.500 ± 0.000"
    header, rule, line = table.splitlines()
    assert header.endswith("| mig | factorvae_score |") and rule.count("---") == header.count("|") - 1
    assert line.endswith("| 0.500 ± 0.354 | 0.500 ± 0.000 |")


def test_runs_on_a_set_without_classes_are_tabulated_and_selected_without_labels(tmp_path):
    """A folder's or CelebA's runs have no c1 accuracy and no classifier's scores; the table says
    n/a there, and the label-free score still selects a run."""
    rows = [{"model": "infogan", "seed": seed, "diverged": False, "stopped": False, "failed": False,
             "c1_accuracy": "n/a (folder has no classes)", "label_free_score": score, "label_free_score_max": 2.3,
             "var_loss_d": None, "var_loss_g": None} for seed, score in enumerate((0.5, 1.5, 1.0))]
    (entry,), _ = sweep.summarise(rows)
    assert entry["c1_accuracy"] == entry["classes_covered"] == entry["collapsed"] == "n/a"
    assert entry["label_free_score"] == "1.000 ± 0.500"
    text = sweep.selection_text(rows, tmp_path)
    assert f"selected {tmp_path / 'infogan-s1'}" in text and "c1 accuracy n/a" in text and "Spearman" not in text


def test_sweep_tabulates_and_resumes(tmp_path, monkeypatch, capsys):
    def small_classifier(dataset, device, data_root=None, cache=None):
        images, labels = data.load(dataset)
        return classifier.fit(images, labels, device, epochs=1, batch_size=32), 0.5

    monkeypatch.setattr(classifier, "load_or_train", small_classifier)
    args = ["--models", "gan,infowgan", "--seeds", "0-1", "--steps", "2", "--out", str(tmp_path),
            "--samples-per-value", "10", "--fid-samples", "100", "--", "--batch-size", "8", "--n-critic", "1"]
    assert sweep.main(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["model"] for r in summary["table"]] == ["gan", "infowgan"]
    assert summary["table"][0]["c1_accuracy"] == "n/a" and "±" in summary["table"][1]["c1_accuracy"]
    assert "| infowgan | 2 |" in (tmp_path / "summary.md").read_text()
    assert "infowgan · seed 1" in (tmp_path / "report" / "index.html").read_text()
    assert "±" in summary["table"][0]["fid"]

    def no_training(argv):
        raise AssertionError("finished runs must not train again")

    def no_evaluation(*a, **k):
        raise AssertionError("runs evaluated at their last step with the same settings keep their scores")

    with monkeypatch.context() as m:
        m.setattr(train, "main", no_training)
        m.setattr(sweep, "evaluate_model", no_evaluation)
        assert sweep.main(args) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["table"] == summary["table"]

    # more steps: every run trains on from its checkpoint and is evaluated again at its new step
    longer = [*args]
    longer[longer.index("--steps") + 1] = "3"
    assert sweep.main(longer) == 0
    runs = json.loads((tmp_path / "summary.json").read_text())["runs"]
    assert [r["step"] for r in runs] == [3, 3, 3, 3]
    assert (tmp_path / "summary.md").read_text().startswith("3 generator steps per run")
    steps = [json.loads(r)["step"] for r in (tmp_path / "gan-s0" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]

    # the runs' own settings stay; a changed one is refused, not ignored
    changed = [*longer, "--batch-size", "16"]
    changed[changed.index("--steps") + 1] = "4"
    assert sweep.main(changed) == 2
    assert "cannot change batch_size when resuming" in capsys.readouterr().err

    # fewer steps than a run has: it is evaluated as it is, and the summary says so
    assert sweep.main(args) == 0
    assert (tmp_path / "summary.md").read_text().startswith("2 (--steps) or 3 generator steps per run")


def test_sweep_resumes_a_run_killed_before_its_first_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(classifier, "load_or_train", lambda *a, **k: (classifier.Classifier(), 0.1))
    args = ["--models", "gan", "--seeds", "0", "--steps", "2", "--out", str(tmp_path),
            "--samples-per-value", "5", "--fid-samples", "20", "--", "--batch-size", "8"]
    started = tmp_path / "gan-s0"
    started.mkdir()
    cfg = train.make_config(train.parse_args(["--model", "gan", "--out", str(started), "--batch-size", "8",
                                              "--dataset", "mnist", "--device", "auto"])[0])
    (started / "config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    (started / "metrics.jsonl").write_text('{"step": 1, "loss_d": 1.0, "loss_g": 1.0}\n{"step": 2, "lo')
    assert sweep.main(args) == 0
    assert json.loads((started / "eval.json").read_text())["step"] == 2


@pytest.mark.parametrize("args, msg", [
    (["--models", "gan,infogn"], "unknown model 'infogn'"),
    (["--models", "infogan", "--", "--batch-size", "1"], "--batch-size must be in 2..60000"),
    (["--models", "infogan", "--device", "gpu"], "unknown --device 'gpu'"),
    (["--models", "infogan", "--", "--model", "gan"],
     "the sweep sets --model for every run: remove it after `--` (--models)"),
    (["--models", "infogan", "--", "--seed=3", "--dataset", "fashion-mnist"],
     "the sweep sets --seed, --dataset for every run: remove them after `--` (--seeds; --dataset)"),
])
def test_sweep_checks_every_run_before_it_starts(args, msg, tmp_path, monkeypatch, capsys):
    def no_classifier(*a, **k):
        raise AssertionError("a bad setting must stop the sweep before the classifier trains")

    monkeypatch.setattr(classifier, "load_or_train", no_classifier)
    out = tmp_path / "sweep"
    args = args[:2] + ["--steps", "2", "--out", str(out)] + args[2:]
    assert sweep.main(args) == 2
    assert msg in capsys.readouterr().err and not out.exists()


def test_sweep_counts_diverged_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(classifier, "load_or_train", lambda *a, **k: (classifier.Classifier(), 0.1))
    monkeypatch.setattr(train, "main", lambda argv: train.EXIT_NON_FINITE)
    args = ["--models", "infogan", "--seeds", "0", "--steps", "2", "--out", str(tmp_path)]
    assert sweep.main(args) == 0
    table = json.loads((tmp_path / "summary.json").read_text())["table"]
    assert table[0]["diverged"] == "1/1" and (tmp_path / "infogan-s0" / "diverged").is_file()
    # the sweep run again: the diverged run stays as it is, and counted
    monkeypatch.setattr(train, "main", lambda argv: pytest.fail("a diverged run is not trained again"))
    assert sweep.main(args) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["table"] == table


def test_sweep_replaces_a_failed_seed_by_the_next_and_selects_by_the_label_free_score(tmp_path, monkeypatch,
                                                                                       capsys):
    monkeypatch.setattr(classifier, "load_or_train", lambda *a, **k: (classifier.Classifier(), 0.1))
    real_main, trained = train.main, []

    def main(argv):  # seed 1 fails the check over its first 3 steps
        seed = argv[argv.index("--seed") + 1]
        trained.append(seed)
        with monkeypatch.context() as m:
            if seed == "1":
                m.setattr(failure, "FailureCheck", functools.partial(failure.FailureCheck, threshold=1.01, window=3))
            return real_main(argv)

    monkeypatch.setattr(train, "main", main)
    args = ["--models", "infogan", "--seeds", "0-1", "--steps", "6", "--out", str(tmp_path), "--replace-failed",
            "--samples-per-value", "5", "--fid-samples", "20", "--", "--batch-size", "8", "--log-every", "2"]
    assert sweep.main(args) == 0
    assert trained == ["0", "1", "2"]
    assert "infogan seed 1 failed (D(G(z)) averaged" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = {r["seed"]: r for r in summary["runs"]}
    assert rows[1]["stopped"] and rows[1]["replaced_by"] == 2 and rows[2]["replaces"] == 1
    assert rows[1]["failed"].startswith("D(G(z)) averaged") and "c1_accuracy" not in rows[1]
    assert not rows[0]["failed"] and not rows[2]["failed"]
    # the two trained runs' agreement is the ARI of their assignments, the same both ways
    assert rows[0]["agreement"] == rows[2]["agreement"] and -1 <= rows[0]["agreement"] <= 1
    assert "agreement" not in rows[1]
    (entry,) = summary["table"]
    assert entry["runs"] == 2 and entry["failed"] == "1/3 (1 stopped and replaced)"
    best = tmp_path / f"infogan-s{max((rows[0], rows[2]), key=lambda r: r['label_free_score'])['seed']}"
    assert summary["selected"] == {"infogan": str(best)}
    assert f"**infogan: selected {best}** (label-free score" in (tmp_path / "summary.md").read_text()
    # run again: nothing trains, the stopped run stays replaced by the same seed
    monkeypatch.setattr(train, "main", lambda argv: pytest.fail("every run is done"))
    assert sweep.main(args) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["table"] == summary["table"]


@pytest.mark.parametrize("text, seeds", [("0,1,2", [0, 1, 2]), ("0-3", [0, 1, 2, 3]), ("5,7-8", [5, 7, 8]),
                                         ("0-2,1", [0, 1, 2])])
def test_seeds(text, seeds):
    assert sweep.arg_parser().parse_args(["--steps", "1", "--out", "x", "--seeds", text]).seeds == seeds


def test_models_are_counted_once():
    args = sweep.arg_parser().parse_args(["--steps", "1", "--out", "x", "--models", "gan, infogan,gan"])
    assert args.models == ["gan", "infogan"]


@pytest.mark.data
@pytest.mark.slow
def test_sweep_trains_in_parallel_processes_on_real_mnist(real_data, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "load", REAL_LOAD)  # the subprocesses read the real files: so does this one
    monkeypatch.setattr(classifier, "load_or_train", lambda *a, **k: (classifier.Classifier(), 0.1))
    args = ["--models", "gan,infogan", "--seeds", "0", "--steps", "2", "--out", str(tmp_path), "--procs", "2",
            "--samples-per-value", "5", "--fid-samples", "50", "--device", "cpu", "--", "--batch-size", "8"]
    assert sweep.main(args) == 0
    for run in ("gan-s0", "infogan-s0"):
        assert json.loads((tmp_path / run / "eval.json").read_text())["step"] == 2


def test_sweep_interrupted_says_the_same_command_goes_on(tmp_path, monkeypatch, capsys):
    """Ctrl-C in a run's training (the trainer's handler, exit code 130) or in the evaluation
    (KeyboardInterrupt) ends the sweep with one line, and the same command completes it."""
    monkeypatch.setattr(classifier, "load_or_train", lambda *a, **k: (classifier.Classifier(), 0.1))
    args = ["--models", "infogan", "--seeds", "0", "--steps", "2", "--out", str(tmp_path), "--samples-per-value",
            "5", "--fid-samples", "50", "--device", "cpu", "--", "--batch-size", "8"]
    for where in ("train", "evaluate"):
        with monkeypatch.context() as m:
            if where == "train":
                m.setattr(train, "main", lambda argv: train.EXIT_INTERRUPTED)
            else:
                m.setattr(sweep, "evaluate_model", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
            assert sweep.main(args) == 130
        assert capsys.readouterr().err.splitlines()[-1] == f"interrupted: {sweep.GOES_ON}"
    assert sweep.main(args) == 0
    assert json.loads((tmp_path / "infogan-s0" / "eval.json").read_text())["step"] == 2


CHILD = """import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
signal.signal(signal.SIGINT, lambda *_: (out.with_suffix(".stopped").touch(), sys.exit(130)))
out.with_suffix(".started").touch()
time.sleep(60)
"""


def test_a_signal_to_a_parallel_sweep_stops_every_run_and_starts_no_more(tmp_path, monkeypatch):
    """SIGTERM to the sweep process alone (not its process group) reaches each training process as
    the SIGINT that makes it write its checkpoint, and the runs not started yet are not started."""
    popen = sweep.subprocess.Popen
    monkeypatch.setattr(sweep.subprocess, "Popen",
                        lambda cmd: popen([sys.executable, "-c", CHILD, cmd[cmd.index("--out") + 1]]))
    jobs = [(tmp_path / f"infogan-s{seed}", "infogan", seed, 2, []) for seed in range(3)]
    started = [tmp_path / f"infogan-s{seed}.started" for seed in range(2)]

    def stop_when_started():
        while not all(p.exists() for p in started):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    def ours(*_):  # the handler the sweep replaces while it runs, and gives back
        pass

    before = signal.signal(signal.SIGTERM, ours)
    try:
        threading.Thread(target=stop_when_started, daemon=True).start()
        assert sweep.run_parallel(jobs, 2) is True
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, before)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "infogan-s0.started", "infogan-s0.stopped", "infogan-s1.started", "infogan-s1.stopped"]


def test_sweep_out_that_is_a_file_stops_before_the_classifier_trains(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(classifier, "load_or_train", lambda *a, **k: pytest.fail("the classifier was trained"))
    (tmp_path / "out").write_text("")
    assert sweep.main(["--steps", "1", "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    assert capsys.readouterr().err == f"error: cannot make the folder --out {tmp_path / 'out'}: a file has its name\n"


def test_runs_spread_over_the_gpus_given_one_run_a_gpu_at_a_time(tmp_path, monkeypatch):
    """--gpus: each run gets --device cuda:K (the last --device given, the one taken), on a GPU
    that holds no other run while GPUs are free, so at most procs / GPUs runs share one."""
    running, seen, lock = {}, [], threading.Lock()

    class FakeRun:
        def __init__(self, cmd):
            self.device = cmd[len(cmd) - 1 - cmd[::-1].index("--device") + 1]
            with lock:
                running[self.device] = running.get(self.device, 0) + 1
                seen.append((self.device, dict(running)))

        def wait(self):
            time.sleep(0.05)
            with lock:
                running[self.device] -= 1
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(sweep.subprocess, "Popen", FakeRun)
    jobs = [(tmp_path / f"infogan-s{seed}", "infogan", seed, 2, ["--device", "auto"]) for seed in range(6)]
    assert sweep.run_parallel(jobs, 2, gpus=[0, 3]) is False
    assert sorted(device for device, _ in seen) == ["cuda:0"] * 3 + ["cuda:3"] * 3
    assert all(at_start[device] == 1 for device, at_start in seen)


def test_print_commands_gives_one_training_command_a_run_and_trains_nothing(tmp_path, monkeypatch, capsys,
                                                                          synthetic_mnist):
    monkeypatch.setattr(classifier, "load_or_train", lambda *a, **k: pytest.fail("the classifier was trained"))
    argv = ["--models", "gan,infogan", "--seeds", "0-1", "--steps", "5", "--out", str(tmp_path / "s"),
            "--print-commands", "--", "--batch-size", "8"]
    assert sweep.main(argv) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 4 and not (tmp_path / "s").exists()
    assert lines[3] == (f"python -m fastinfo.train --model infogan --seed 1 --out {tmp_path / 's' / 'infogan-s1'} "
                        "--steps 5 --no-eval-at-end --no-progress --dataset mnist --device auto --batch-size 8")
    assert err.strip().endswith(f"python -m fastinfo.sweep --models gan,infogan --seeds 0-1 --steps 5 --out "
                                f"{tmp_path / 's'} -- --batch-size 8")
    # each command trains its run; the same sweep then finds them trained (here: one of them)
    from tests.helpers import FAST

    assert train.main([*lines[0].split()[3:], *FAST]) == 0
    assert sweep.main(argv) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_gpus_with_a_cpu_device_is_refused(tmp_path, capsys):
    assert sweep.main(["--steps", "1", "--out", str(tmp_path), "--device", "cpu", "--gpus", "0,1"]) == 2
    assert capsys.readouterr().err == ("error: --gpus places each run on a GPU, which --device cpu contradicts: "
                                       "leave --device out (or give cuda)\n")
