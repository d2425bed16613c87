"""The command line end to end on tiny synthetic data: outputs, exact resume, every bad input."""

import errno
import gc
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from fastinfo import checkpoint, data, evaluate, runner, runs
from fastinfo import train as train_mod
from fastinfo.infogan import InfoGAN
from fastinfo.train import main
from tests.helpers import FAST, after_start, run, weights

pytestmark = pytest.mark.usefixtures("synthetic_mnist")


def test_infogan_smoke_writes_every_output(tmp_path):
    assert run(tmp_path, "--model", "infogan", "--steps", 6, "--ckpt-every", 3, "--sample-every", 3) == 0
    for name in ("config.json", "checkpoint.pt", "metrics.jsonl", "loss_curves.png", "info_curve.png",
                 "traverse_c1.png", "traverse_c2.png", "traverse_c3.png", "eval.json", "timings.json"):
        assert (tmp_path / name).is_file(), name
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert {"loss_d", "loss_g", "info_c1", "info_c2", "info_c3", "step_time"} <= set(rows[0])
    result = json.loads((tmp_path / "eval.json").read_text())
    assert 0 <= result["c1_accuracy"] <= 1 and result["preset"] == "tuned" and result["step"] == 6
    assert json.loads((tmp_path / "config.json").read_text())["preset"] == "tuned"


def test_infogan_with_continuous_codes_only(tmp_path):
    assert run(tmp_path, "--model", "infogan", "--steps", 2, "--cat-sizes=", "--n-cont", 2) == 0
    assert json.loads((tmp_path / "eval.json").read_text())["c1_accuracy"] == "n/a (no categorical code)"
    assert (tmp_path / "info_curve.png").exists()


def test_gan_baseline_has_no_q_metrics(tmp_path):
    assert run(tmp_path, "--model", "gan", "--steps", 2, "--preset", "openai") == 0
    assert "n/a" in json.loads((tmp_path / "eval.json").read_text())["c1_accuracy"]
    assert not (tmp_path / "info_curve.png").exists() and (tmp_path / "traverse_c1.png").exists()
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["slope"] == 0.01 and cfg["learn_std"] is False and cfg["noise_prior"] == "uniform"


@pytest.mark.parametrize("args, steps", [
    # 64 images at batch 8: 8 batches an epoch
    (("--model", "infogan", "--epochs", 1.5), 12),
    (("--model", "gan", "--epochs", 0.01), 1),
    # a critic step takes a batch: 3 generator steps of 4 critic steps each make the 1.5 epochs
    (("--model", "infowgan", "--n-critic", 4, "--epochs", 1.5), 3),
    # WGAN's schedule takes 100 batches a generator step at first
    (("--model", "wgan", "--wgan-schedule", "--epochs", 20), 2),
])
def test_epochs_are_passes_over_the_training_set(tmp_path, args, steps):
    assert run(tmp_path, *args, "--no-eval-at-end") == 0
    assert checkpoint.saved_step(tmp_path / "checkpoint.pt") == steps


def test_epochs_given_to_a_resume_outrank_the_runs_own_steps(tmp_path):
    assert run(tmp_path, "--steps", 2, "--no-eval-at-end") == 0
    assert main(["--resume", str(tmp_path), "--epochs", "1", "--no-progress", "--no-eval-at-end"]) == 0
    assert checkpoint.saved_step(tmp_path / "checkpoint.pt") == 8
    assert json.loads((tmp_path / "config.json").read_text())["steps"] is None


@pytest.mark.parametrize("args, steps", [
    ((), 20),
    # optimiser states, MINE's moving average, the loss scaler and the critic's schedule resume too
    (("--model", "minegan"), 4), (("--model", "infowgan", "--n-critic", 2), 4), (("--amp", "fp16"), 4),
    (("--amp", "bf16", "--weight-copies"), 4), (("--model", "infovae"), 4),
], ids=lambda v: " ".join(map(str, v)) if isinstance(v, tuple) else None)
def test_resume_is_exact(tmp_path, args, steps):
    """The whole state resumes: networks, optimisers, the loss scaler, MINE's moving average,
    the data order and the random streams; the resumed run logs what the straight one logs."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run(straight, *args, "--steps", steps, "--no-eval-at-end") == 0
    assert run(split, *args, "--steps", steps // 2, "--no-eval-at-end") == 0
    assert main(["--resume", str(split), "--steps", str(steps), "--no-progress"]) == 0
    a, b = (checkpoint.load(run / "checkpoint.pt") for run in (straight, split))
    assert a.keys() == b.keys()
    for part in sorted(a.keys() - {"config"}):  # the config names the run folder
        torch.testing.assert_close(b[part], a[part], rtol=0, atol=0, equal_nan=True, msg=f"{part} differs")
    rows = [json.loads(r) for r in (split / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, steps + 1))
    straight_rows = [json.loads(r) for r in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [{**r, "step_time": 0} for r in rows] == [{**r, "step_time": 0} for r in straight_rows]


@pytest.mark.skipif(runs.fcntl is None, reason="runs are locked only where fcntl exists")
def test_a_run_in_progress_cannot_be_trained_by_a_second_process(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert run(run_dir, "--steps", 2, "--no-eval-at-end") == 0
    # another process's lock (flock conflicts between separate opens, also within one process)
    with runs.exclusive_run(run_dir):
        assert main(["--resume", str(run_dir), "--steps", "4", "--no-progress"]) == 2
        assert f"{run_dir} is being trained by another process (pid {os.getpid()})" in capsys.readouterr().err
        fresh = tmp_path / "fresh"
        with runs.exclusive_run(fresh):
            assert run(fresh, "--steps", 2) == 2
            assert "being trained by another process" in capsys.readouterr().err
    # the lock ends with its holder: the run continues
    assert main(["--resume", str(run_dir), "--steps", "4", "--no-progress", "--no-eval-at-end"]) == 0
    assert checkpoint.load(run_dir / "checkpoint.pt")["step"] == 4
    assert not fresh.exists(), "a folder made for a run that never started is removed"


def test_a_run_that_fails_to_start_leaves_no_folder(tmp_path, monkeypatch, capsys):
    assert main(["--resume", str(tmp_path / "none"), "--no-progress"]) == 2
    assert run(tmp_path / "bad", "--device", "cpu", "--cuda-graphs") == 2
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the extra not installed
    assert run(tmp_path / "tb", "--steps", 2, "--tensorboard") == 2
    assert "pip install 'fastinfo[tensorboard]'" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("none", "bad", "tb"))
    # nor the folders made above it, where they are still empty
    def load_while_another_run_starts(*a, **k):
        if (tmp_path / "shared").exists():
            (tmp_path / "shared" / "other").mkdir()
        raise data.DataError("mnist not found")

    with monkeypatch.context() as m:
        m.setattr(data, "load", load_while_another_run_starts)
        assert run(tmp_path / "made" / "above" / "bad", "--steps", 1) == 2
        assert run(tmp_path / "shared" / "bad", "--steps", 1) == 2
    assert not (tmp_path / "made").exists()
    assert [p.name for p in (tmp_path / "shared").iterdir()] == ["other"]
    # a folder that holds no run keeps no lock file; a file is no run folder
    (tmp_path / "notes").mkdir()
    assert main(["--resume", str(tmp_path / "notes"), "--no-progress"]) == 2
    assert not (tmp_path / "notes" / ".lock").exists()
    (tmp_path / "file").write_text("")
    for args in (["--resume", str(tmp_path / "file")], ["--out", str(tmp_path / "file"), "--steps", "1"],
                 ["--out", str(tmp_path / "file" / "run"), "--steps", "1"]):
        assert main([*args, "--no-progress"]) == 2
        assert "cannot use" in capsys.readouterr().err


def test_a_metrics_row_cut_short_by_a_kill_is_trained_again(tmp_path):
    assert run(tmp_path, "--steps", 2, "--no-eval-at-end") == 0
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "loss_d": 0.7')  # the process killed during the next append
    assert main(["--resume", str(tmp_path), "--steps", "4", "--no-progress", "--no-eval-at-end"]) == 0
    steps = [json.loads(r)["step"] for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_a_full_disk_stops_the_run_with_its_last_checkpoint_kept(tmp_path, monkeypatch, capsys):
    real_save, writes = checkpoint.save, []

    def disk_full_at_the_second_write(state, path, previous=None):
        writes.append(state["step"])
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_save(state, path, previous)

    with monkeypatch.context() as m:
        m.setattr(checkpoint, "save", disk_full_at_the_second_write)
        assert run(tmp_path, "--steps", 4, "--ckpt-every", 1, "--no-eval-at-end") == 2
    err = capsys.readouterr().err
    assert f"cannot write {tmp_path / 'checkpoint.pt'}: No space left on device" in err
    assert f"--resume {tmp_path}" in err and "Traceback" not in err
    assert checkpoint.load(tmp_path / "checkpoint.pt")["step"] == 1
    assert main(["--resume", str(tmp_path), "--no-progress", "--no-eval-at-end"]) == 0
    steps = [json.loads(r)["step"] for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_a_run_trains_from_the_host_and_goes_on_from_the_device(tmp_path, capsys):
    """--data-on host holds the set in host memory (data.HostLoader); a resume may move it, and
    on a CPU both draw the batch order from the same kind of generator: no new streams."""
    assert run(tmp_path, "--steps", 2, "--data-on", "host", "--no-eval-at-end") == 0
    assert "64 images, held on the host) on cpu" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path), "--steps", "4", "--data-on", "device", "--no-progress",
                 "--no-eval-at-end"]) == 0
    err = capsys.readouterr().err
    assert "held on the host" not in err and "new seeds" not in err
    assert checkpoint.saved_step(tmp_path / "checkpoint.pt") == 4


def test_a_run_goes_on_from_data_that_moved(tmp_path, monkeypatch, capsys):
    """--data-root may change on --resume (another machine, a moved folder); config.json then
    holds the settings the run goes on with, which fastinfo.evaluate reads, or its own --data-root."""

    synthetic = data.load

    def load(name, train=True, data_root=None, download=True, size=None):
        if data_root is not None and not os.path.isdir(data_root):
            raise data.DataError(f"--data-root {data_root} is not a folder")
        return synthetic(name, train, data_root, download, size)

    monkeypatch.setattr(data, "load", load)
    first, moved, again, r = tmp_path / "first", tmp_path / "moved", tmp_path / "again", tmp_path / "run"
    first.mkdir()
    assert run(r, "--steps", 2, "--data-root", first, "--no-eval-at-end") == 0
    first.rename(moved)
    assert main(["--resume", str(r), "--steps", "4", "--no-progress", "--no-eval-at-end"]) == 2
    moved_away = "read its data from {} (its --data-root), which is no folder now: give --data-root the folder"
    assert after_start(capsys.readouterr().err).startswith(f"error: {r} " + moved_away.format(first))
    assert main(["--resume", str(r), "--steps", "4", "--data-root", str(moved), "--no-progress", "--eval-at-end"]) == 0
    saved = json.loads((r / "config.json").read_text())
    assert (saved["data_root"], saved["steps"]) == (str(moved), 4)
    assert json.loads((r / "eval.json").read_text())["step"] == 4
    moved.rename(again)
    capsys.readouterr()
    assert evaluate.main([str(r), "--quick"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {r} " + moved_away.format(moved))
    assert evaluate.main([str(r), "--quick", "--data-root", str(again)]) == 0

def test_a_run_stopped_before_its_first_checkpoint_resumes_from_the_start(tmp_path, capsys):
    """A run killed before its first checkpoint holds its settings and some metrics only: its
    --resume trains it from step 0, as its start did."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run(straight, "--steps", 4, "--no-eval-at-end") == 0
    killed.mkdir()
    (killed / "config.json").write_text((straight / "config.json").read_text())
    (killed / "metrics.jsonl").write_text('{"step": 1, "loss_d": 9.0}\n')
    assert main(["--resume", str(killed), "--no-progress", "--no-eval-at-end"]) == 0
    assert f"{killed} has no checkpoint yet: training it from the start" in capsys.readouterr().err
    a, b = (checkpoint.load(r / "checkpoint.pt") for r in (straight, killed))
    torch.testing.assert_close(b["models"], a["models"], rtol=0, atol=0)
    steps = [json.loads(r)["step"] for r in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_sigint_saves_checkpoint_and_resume_continues(tmp_path, monkeypatch):
    real_step = InfoGAN.step
    calls = {"n": 0}

    def step(self, reals, gen):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(self, reals, gen)

    monkeypatch.setattr(InfoGAN, "step", step)
    assert run(tmp_path, "--steps", 10, "--ckpt-every", 100) == train_mod.EXIT_INTERRUPTED
    assert checkpoint.load(tmp_path / "checkpoint.pt")["step"] == 3
    assert not (tmp_path / "timings.json").exists()  # written by a run that ends
    assert main(["--resume", str(tmp_path), "--no-progress"]) == 0
    assert checkpoint.load(tmp_path / "checkpoint.pt")["step"] == 10
    assert json.loads((tmp_path / "timings.json").read_text())["steps_trained"] == 7


def test_ctrl_c_outside_the_loop_says_what_is_kept(tmp_path, monkeypatch, capsys):
    """Before the loop's handler (loading the data) and after it (the figures, the evaluation),
    Ctrl-C raises KeyboardInterrupt: one line says what is kept, and --resume completes the run."""

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(data, "load", interrupt)
        assert run(tmp_path / "a", "--steps", 4) == train_mod.EXIT_INTERRUPTED
    assert capsys.readouterr().err.splitlines()[-1] == "interrupted: before training started: nothing was trained"
    assert not (tmp_path / "a").exists()
    with monkeypatch.context() as m:
        m.setattr(train_mod.Trainer, "write_figures", interrupt)
        assert run(tmp_path / "a", "--steps", 4) == train_mod.EXIT_INTERRUPTED
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"interrupted: {tmp_path / 'a'} is trained to step 4 and its checkpoint written; --resume {tmp_path / 'a'} "
        "writes the figures and the evaluation")
    assert checkpoint.load(tmp_path / "a" / "checkpoint.pt")["step"] == 4
    assert not (tmp_path / "a" / "eval.json").exists()
    assert main(["--resume", str(tmp_path / "a"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "a" / "eval.json").read_text())["step"] == 4
    assert (tmp_path / "a" / "traverse_c1.png").is_file()


def test_sigterm_outside_the_loop_ends_as_ctrl_c_does(tmp_path, monkeypatch, capsys):
    """By default SIGTERM would end the process at once, the checkpoint written in the background
    included; the command line answers it as Ctrl-C, and gives the handler back after."""
    def not_replaced(*_):  # stands for the default action, which would end pytest
        pytest.fail("SIGTERM reached the handler the command line should have replaced")

    def terminate(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(train_mod.Trainer, "write_figures", terminate)
    before = signal.signal(signal.SIGTERM, not_replaced)
    try:
        assert run(tmp_path, "--steps", 4) == train_mod.EXIT_INTERRUPTED
        assert signal.getsignal(signal.SIGTERM) is not_replaced
    finally:
        signal.signal(signal.SIGTERM, before)
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"interrupted: {tmp_path} is trained to step 4")
    assert checkpoint.load(tmp_path / "checkpoint.pt")["step"] == 4


OOM = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 7.63 GiB of which 1.12 GiB "
       "is free. Of the allocated memory 5.90 GiB is allocated by PyTorch. If reserved but unallocated memory is large "
       "try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True")


def test_out_of_gpu_memory_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    step = runner.EagerStep.__call__

    def runs_out_at_the_fourth_step(self, index):
        if index == 3:
            raise torch.OutOfMemoryError(OOM)
        return step(self, index)

    with monkeypatch.context() as m:
        m.setattr(runner.EagerStep, "__call__", runs_out_at_the_fourth_step)
        assert run(tmp_path, "--steps", 6, "--ckpt-every", 2, "--no-eval-at-end") == 2
    assert after_start(capsys.readouterr().err) == (
        f"error: out of GPU memory at step 4 of {tmp_path} (CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 "
        f"has a total capacity of 7.63 GiB of which 1.12 GiB is free); its checkpoint of step 2 is kept: --resume "
        f"{tmp_path} goes on once the GPU has room (fewer processes on it at once: a sweep's --procs)\n")
    assert main(["--resume", str(tmp_path), "--no-progress"]) == 0
    assert checkpoint.saved_step(tmp_path / "checkpoint.pt") == 6

    # out of memory while the run is set up (the data set moved to the GPU): no run folder is left
    monkeypatch.setattr(data, "DeviceLoader", lambda *a, **k: (_ for _ in ()).throw(torch.OutOfMemoryError(OOM)))
    assert run(tmp_path / "new", "--steps", 2) == 2
    assert after_start(capsys.readouterr().err).startswith(
        "error: out of GPU memory while the run was set up (CUDA out of memory.")
    assert not (tmp_path / "new").exists()


def test_tensorboard_gets_every_logged_metric_of_every_step(tmp_path, monkeypatch):
    class Writer:
        made = []

        def __init__(self, log_dir):
            self.log_dir, self.scalars, self.closed = log_dir, [], False
            Writer.made.append(self)

        def add_scalar(self, tag, value, step):
            self.scalars.append((tag, value, step))

        def close(self):
            self.closed = True

    monkeypatch.setattr(train_mod, "tensorboard_writer", lambda: Writer)
    assert run(tmp_path, "--steps", 3, "--tensorboard", "--no-eval-at-end") == 0
    (writer,) = Writer.made
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    expected = [(k, r[k], r["step"]) for r in rows for k in r if k not in ("step", "step_time")]
    assert writer.log_dir == str(tmp_path / "tensorboard") and writer.closed
    assert sorted(writer.scalars) == sorted(expected) and {s for _, _, s in expected} == {1, 2, 3}


def test_missing_data_exits_2(tmp_path, capsys, monkeypatch):
    def load(*a, **k):
        raise data.DataError("mnist not found. Tried: ...")

    monkeypatch.setattr(data, "load", load)
    assert run(tmp_path, "--steps", 1) == 2
    assert "mnist not found" in capsys.readouterr().err


def test_an_unreadable_test_split_stops_the_run_before_it_trains(tmp_path, capsys, monkeypatch):
    load = data.load

    def test_split_unreadable(name, train=True, **k):
        if not train:
            raise data.DataError("mnist's test files in /data are unreadable")
        return load(name, train, **k)

    monkeypatch.setattr(data, "load", test_split_unreadable)
    assert run(tmp_path / "run", "--steps", 1) == 2
    assert "mnist's test files in /data are unreadable" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    # without the evaluation at the end, the test split is not read
    assert run(tmp_path / "run", "--steps", 1, "--no-eval-at-end") == 0


def test_occupied_run_folder_is_not_overwritten(tmp_path, capsys):
    assert run(tmp_path, "--steps", 2, "--no-eval-at-end") == 0
    before = (tmp_path / "config.json").read_text(), (tmp_path / "checkpoint.pt").read_bytes()
    assert run(tmp_path, "--steps", 4, "--model", "gan") == 2
    assert "already holds a run" in capsys.readouterr().err
    assert before == ((tmp_path / "config.json").read_text(), (tmp_path / "checkpoint.pt").read_bytes())


def test_resume_errors(tmp_path, capsys):
    assert main(["--resume", str(tmp_path / "nothing")]) == 2
    assert "holds no run" in capsys.readouterr().err
    assert run(tmp_path, "--steps", 2, "--no-eval-at-end") == 0
    assert main(["--resume", str(tmp_path), "--model", "gan"]) == 2
    assert "cannot change model" in capsys.readouterr().err
    metrics = (tmp_path / "metrics.jsonl").read_text()
    assert main(["--resume", str(tmp_path), "--steps", "1", "--no-eval-at-end", "--no-progress"]) == 0
    assert "has trained 2 steps, the 1 asked for: nothing to train" in capsys.readouterr().err
    assert (tmp_path / "metrics.jsonl").read_text() == metrics
    # a configuration edited since the checkpoint (whose shapes would not fit it either)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "noise_dim": 10}))
    assert main(["--resume", str(tmp_path), "--steps", "3"]) == 2
    assert "with other settings: its noise_dim 62 (the run's: 10)" in capsys.readouterr().err
    for saved, msg in (([cfg], "config.json is corrupt: it holds a list"),
                       ({**cfg, "batch_size": "8"}, "batch_size (--batch-size) must be an integer, got '8'")):
        (tmp_path / "config.json").write_text(json.dumps(saved))
        assert main(["--resume", str(tmp_path), "--steps", "3", "--no-progress"]) == 2
        assert msg in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main(["--resume", str(tmp_path), "--steps", "3"]) == 2
    assert "corrupt" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a run trained on a GPU, moved to a machine without one")
def test_a_gpu_run_moved_to_a_cpu_machine(tmp_path, capsys):
    """Each error names what to give, though the GPU settings are the run's own, not given now;
    evaluate's --device auto is this machine's device, not the run's."""
    assert run(tmp_path, "--steps", 2, "--no-eval-at-end") == 0
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "device": "cuda", "cuda_graphs": True}))
    resume = ["--resume", str(tmp_path), "--steps", "3", "--no-progress", "--no-eval-at-end"]
    for extra, msg in [
        ([], f"{tmp_path} trains on --device cuda: no CUDA GPU is available; use --device cpu"),
        (["--device", "cpu"], f"cannot resume {tmp_path} so: --cuda-graphs needs a CUDA device, not --device cpu "
                              f"(a setting not given now is the run's own, from {tmp_path / 'config.json'}: give it "
                              "to change it, a switch as --no-NAME)"),
        (["--device", "auto"], "--cuda-graphs needs a CUDA GPU and none is available; continue without it: "
                               "--no-cuda-graphs"),
    ]:
        assert main([*resume, *extra]) == 2
        assert after_start(capsys.readouterr().err) == f"error: {msg}\n"
    assert evaluate.main([str(tmp_path), "--quick"]) == 0
    # a GPU's generators keep a Philox seed and offset (16 bytes), not a CPU's Mersenne Twister
    state = checkpoint.load(tmp_path / "checkpoint.pt")
    state["rng"]["sample"] = state["rng"]["loader"] = torch.zeros(16, dtype=torch.uint8)
    checkpoint.save(state, tmp_path / "checkpoint.pt")
    assert main([*resume, "--device", "cpu", "--no-cuda-graphs"]) == 0
    assert "was saved on another kind of device than cpu: its random streams" in capsys.readouterr().err
    assert checkpoint.load(tmp_path / "checkpoint.pt")["step"] == 3


def test_figure_and_evaluation_libraries_load_while_the_loop_trains(tmp_path, monkeypatch):
    """Importing the trainer leaves matplotlib and scikit-learn out; the run imports them on a
    worker thread once its loop starts, and its figures and evaluation are still written."""
    probe = "import sys, fastinfo.train; print(sorted({'matplotlib', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    started = []
    monkeypatch.setattr(train_mod, "import_in_background", lambda names: started.append(list(names)))
    assert run(tmp_path / "a", "--model", "infogan", "--steps", 2) == 0
    assert run(tmp_path / "b", "--model", "gan", "--steps", 2, "--no-eval-at-end") == 0
    assert started == [["fastinfo.plots", "fastinfo.evaluate"], ["fastinfo.plots"]]
    assert (tmp_path / "a" / "eval.json").is_file() and not (tmp_path / "b" / "eval.json").exists()
    assert (tmp_path / "b" / "loss_curves.png").is_file()


def test_background_import_loads_modules_and_leaves_failures_to_the_first_use(monkeypatch):
    uncaught = []
    monkeypatch.setattr(threading, "excepthook", uncaught.append)
    monkeypatch.delitem(sys.modules, "fastinfo.report", raising=False)
    train_mod.import_in_background(["fastinfo.report"]).join()
    assert "fastinfo.report" in sys.modules
    train_mod.import_in_background(["fastinfo.no_such_module", "fastinfo.report"]).join()
    assert uncaught == []
    with pytest.raises(ModuleNotFoundError, match="fastinfo.no_such_module"):
        importlib.import_module("fastinfo.no_such_module")


@pytest.mark.parametrize("eval_at_end", [True, False])
def test_timings_mark_each_part_of_the_run_in_order(tmp_path, monkeypatch, eval_at_end):
    real_figures = train_mod.Trainer.write_figures

    def slow_figures(self):
        time.sleep(0.2)
        return real_figures(self)

    monkeypatch.setattr(train_mod.Trainer, "write_figures", slow_figures)
    assert run(tmp_path, "--steps", 4, *([] if eval_at_end else ["--no-eval-at-end"])) == 0
    timings = json.loads((tmp_path / "timings.json").read_text())
    marks = timings["since_start"]
    names = ["loop_start", "loop_end", "figures_end"] + (["eval_end"] if eval_at_end else []) + ["end"]
    assert list(marks) == names
    assert all(a <= b for a, b in zip(marks.values(), list(marks.values())[1:]))
    assert marks["figures_end"] - marks["loop_end"] >= 0.2
    assert timings["steps_trained"] == 4
    if sys.platform == "linux":  # the interpreter and the imports came before this run (no upper
        # bound: within a long test session the process is as old as the session)
        assert timings["process_age_at_start"] > 0


def test_process_age_counts_from_the_process_start():
    code = "import time; time.sleep(1.0); from fastinfo.runs import process_age; print(process_age())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    if sys.platform != "linux":
        assert out.strip() == "None"
        return
    assert float(out) >= 1.0  # the second slept, and the interpreter's start before it


def test_timings_without_a_process_start_time(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "process_age", lambda: None)
    assert run(tmp_path, "--steps", 2, "--no-eval-at-end") == 0
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert timings["process_age_at_start"] is None and timings["since_start"]["end"] > 0


def test_command_line_exits_with_the_code_of_main_and_its_objects_frozen(monkeypatch):
    monkeypatch.setattr(train_mod, "main", lambda: train_mod.EXIT_NON_FINITE)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    try:
        with pytest.raises(SystemExit) as exit_info:
            train_mod.cli()
        assert exit_info.value.code == train_mod.EXIT_NON_FINITE
        assert gc.get_freeze_count() > 0 and torch.backends.cudnn.benchmark
    finally:
        gc.unfreeze()


def test_deferred_metrics_give_the_same_run_as_reading_every_step(tmp_path):
    """The loop reads device metrics every --log-every steps (one sync); reading them every step,
    as a simple loop does, must not change the run or its log."""
    assert run(tmp_path / "every", "--steps", 6, "--log-every", 1, "--no-eval-at-end") == 0
    assert run(tmp_path / "deferred", "--steps", 6, "--log-every", 6, "--no-eval-at-end") == 0
    a, b = weights(tmp_path / "every" / "checkpoint.pt"), weights(tmp_path / "deferred" / "checkpoint.pt")
    assert all(torch.equal(a[n][k], b[n][k]) for n in ("G", "D") for k in a[n])

    def logged(name):
        rows = [json.loads(r) for r in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "step_time"} for r in rows]

    assert logged("every") == logged("deferred")


@pytest.mark.parametrize("tf32, inside", [(True, "high"), (False, "highest")])
def test_tf32_sets_the_matmul_precision_of_a_gpu_run_and_restores_it(tf32, inside):
    """The precision is global to the process: a run sets it from its config and puts back what
    was there, also when the run fails; on a CPU (where it would change oneDNN) it is untouched."""
    cfg = train_mod.make_config({"tf32": tf32})
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        with pytest.raises(KeyError), train_mod.matmul_precision(cfg, torch.device("cuda")):
            assert torch.get_float32_matmul_precision() == inside
            raise KeyError("a failing run")
        assert torch.get_float32_matmul_precision() == "medium"
        with train_mod.matmul_precision(cfg, torch.device("cpu")):
            assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(before)


def test_a_run_says_what_it_trains_where_and_for_how_long(tmp_path, capsys):
    assert run(tmp_path, "--steps", 3, "--no-eval-at-end") == 0
    threads = torch.get_num_threads()
    assert capsys.readouterr().err.splitlines()[0] == (
        f"training infogan (tuned preset) on mnist (64 images) on cpu ({threads} thread{'s' if threads > 1 else ''}), "
        f"fp32, eager: 3 steps of batch 8, into {tmp_path}")
    assert main(["--resume", str(tmp_path), "--steps", "5", "--no-progress", "--amp", "bf16"]) == 0
    assert capsys.readouterr().err.splitlines()[0].endswith("bf16 autocast, eager: steps 4-5 of batch 8, into "
                                                            f"{tmp_path}")


def test_the_progress_bar_counts_every_step(tmp_path, monkeypatch):
    """The count moves every step from the host (no device sync), not only when the metrics are
    read every --log-every steps: a slow CPU run showed 0/4680 for its first 87 s."""
    updates, postfixes = [], []

    class Bar:
        def __init__(self, *args, **kwargs):
            pass

        def update(self, n=1):
            updates.append(n)

        def set_postfix(self, values, **kwargs):
            postfixes.append(values)

        def close(self):
            pass

    monkeypatch.setattr(train_mod, "tqdm", Bar)
    assert main([*FAST, "--out", str(tmp_path), "--steps", "5", "--log-every", "50", "--no-eval-at-end"]) == 0
    assert updates == [1] * 5 and len(postfixes) == 1 and set(postfixes[0]) == {"loss_d", "loss_g", "info_c1"}
