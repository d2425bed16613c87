"""What the command line keeps and says when things go wrong: corrupt or foreign checkpoints,
signals at awkward moments, divergence, full and read-only disks, settings that cannot work."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from fastinfo import atomic, checkpoint, evaluate
from fastinfo import train as train_mod
from fastinfo.infogan import InfoGAN
from fastinfo.train import main
from tests.helpers import after_start, run

pytestmark = pytest.mark.usefixtures("synthetic_mnist")

REPO = Path(__file__).resolve().parents[1]


def resume(run_dir, *args):
    return main(["--resume", str(run_dir), "--no-progress", "--no-eval-at-end", *map(str, args)])


def flip_a_bit_of_a_weight(path: Path) -> None:
    """One bit of the first tensor's bytes inverted in place, as a damaged disk or copy would."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size >= 64)
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)  # the local header's name and extra-field lengths
        name_len, extra_len = (int.from_bytes(f.read(2), "little") for _ in range(2))
        offset = info.header_offset + 30 + name_len + extra_len + 3
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x40]))


def test_a_checkpoint_with_one_flipped_bit_is_refused(tmp_path, capsys):
    assert run(tmp_path, "--steps", 2, "--no-eval-at-end") == 0
    flip_a_bit_of_a_weight(tmp_path / "checkpoint.pt")
    capsys.readouterr()
    assert resume(tmp_path, "--steps", 4) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {tmp_path / 'checkpoint.pt'} is corrupt: its record" in err
    assert "does not match the CRC-32 it was written with" in err and err.count("\n") == 1
    assert evaluate.main([str(tmp_path), "--quick"]) == 2
    assert "is corrupt: its record" in capsys.readouterr().err


@pytest.mark.parametrize("other_args, differs", [
    (("--seed", 1), "seed 1 (the run's: 0)"),
    (("--model", "gan"), "model 'gan' (the run's: 'infogan')"),
    (("--lr-d", 3e-4), "lr_d 0.0003 (the run's: 0.0002)"),
    (("--batch-size", 4), "batch_size 4 (the run's: 8)"),
])
def test_a_checkpoint_from_another_run_is_refused(tmp_path, capsys, other_args, differs):
    mine, other = tmp_path / "mine", tmp_path / "other"
    assert run(mine, "--steps", 2, "--no-eval-at-end") == 0
    assert run(other, "--steps", 2, "--no-eval-at-end", *other_args) == 0
    shutil.copy(other / "checkpoint.pt", mine / "checkpoint.pt")
    capsys.readouterr()
    assert resume(mine, "--steps", 4) == 2
    err = capsys.readouterr().err
    assert f"{mine / 'checkpoint.pt'} was written by another run or with other settings: its {differs}" in err
    assert err.count("\n") == 1
    assert evaluate.main([str(mine), "--quick"]) == 2


def test_a_config_edited_since_the_checkpoint_is_refused(tmp_path, capsys):
    """config.json and the checkpoint must agree; the settings a resume may change may differ."""
    assert run(tmp_path, "--steps", 2, "--no-eval-at-end") == 0
    cfg = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "batch_size": 16}))
    assert resume(tmp_path, "--steps", 4) == 2
    assert "its batch_size 8 (the run's: 16)" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "log_every": 3, "out": "elsewhere"}))
    assert resume(tmp_path, "--steps", 4) == 0


def test_sigterm_during_the_metrics_flush_writes_the_checkpoint_it_names(tmp_path, monkeypatch, capsys):
    """The flush is the loop's one sync on a GPU, the likely moment for a signal to land."""
    flush = train_mod.Trainer.flush_metrics

    def flush_then_signal(self, bar=None):
        if self.step == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        flush(self, bar)

    monkeypatch.setattr(train_mod.Trainer, "flush_metrics", flush_then_signal)
    assert run(tmp_path, "--steps", 10, "--ckpt-every", 100, "--no-eval-at-end") == train_mod.EXIT_INTERRUPTED
    assert "stopped by signal 15 at step 4; checkpoint saved" in capsys.readouterr().err
    assert checkpoint.load(tmp_path / "checkpoint.pt")["step"] == 4
    assert not (tmp_path / train_mod.PREVIOUS_CHECKPOINT).exists()


def nan_from_step(monkeypatch, first_bad: int) -> None:
    """D's loss is NaN from the first_bad-th step of this process on."""
    real_step, calls = InfoGAN.step, {"n": 0}

    def step(self, reals, gen):
        calls["n"] += 1
        metrics = real_step(self, reals, gen)
        if calls["n"] >= first_bad:
            metrics["loss_d"] = torch.tensor(float("nan"))
        return metrics

    monkeypatch.setattr(InfoGAN, "step", step)


def test_divergence_before_the_first_checkpoint_names_none(tmp_path, monkeypatch, capsys):
    nan_from_step(monkeypatch, 2)
    assert run(tmp_path, "--steps", 10, "--ckpt-every", 5) == train_mod.EXIT_NON_FINITE
    err = capsys.readouterr().err
    assert "non-finite at step 2 (loss_d=nan); no checkpoint was written before it, so --resume trains" in err
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_checkpoint_whose_next_step_diverged_is_not_the_one_kept(tmp_path, monkeypatch, capsys):
    """The checkpoint of step 4 holds the update that made step 5 NaN: a resume from it would stop
    at once. The one of step 2 is kept, and the other is moved aside, not lost."""
    with monkeypatch.context() as m:
        nan_from_step(m, 5)
        assert run(tmp_path, "--steps", 10, "--ckpt-every", 2) == train_mod.EXIT_NON_FINITE
    diverged = tmp_path / train_mod.DIVERGED_CHECKPOINT
    assert after_start(capsys.readouterr().err) == (
        f"error: a loss became non-finite at step 5 (loss_d=nan); the checkpoint of step 4, whose next step "
        f"diverged, is moved to {diverged}; the last good checkpoint, of step 2, is kept in "
        f"{tmp_path / 'checkpoint.pt'}\n")
    assert checkpoint.load(tmp_path / "checkpoint.pt")["step"] == 2
    assert checkpoint.load(diverged)["step"] == 4
    assert not (tmp_path / train_mod.PREVIOUS_CHECKPOINT).exists()
    assert resume(tmp_path) == 0
    steps = [json.loads(r)["step"] for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 11))


def test_divergence_later_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    nan_from_step(monkeypatch, 6)
    assert run(tmp_path, "--steps", 10, "--ckpt-every", 2, "--log-every", 1) == train_mod.EXIT_NON_FINITE
    assert "at step 6 (loss_d=nan); the last good checkpoint, of step 4, is kept in" in capsys.readouterr().err
    assert checkpoint.load(tmp_path / "checkpoint.pt")["step"] == 4


def test_a_finished_run_keeps_one_checkpoint(tmp_path):
    assert run(tmp_path, "--steps", 6, "--ckpt-every", 2, "--no-eval-at-end") == 0
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["checkpoint.pt"]


def test_a_full_disk_during_torch_save_is_one_line(tmp_path, monkeypatch, capsys):
    """torch.save reports ENOSPC as a RuntimeError ("unexpected pos") chained from the OSError."""
    real_save, writes = torch.save, []

    def disk_full_at_the_second_write(obj, f, *args, **kwargs):
        writes.append(obj["step"])
        if len(writes) == 2:
            f.write(b"partial")
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError as e:
                raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0") from e
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", disk_full_at_the_second_write)
    assert run(tmp_path, "--steps", 4, "--ckpt-every", 1, "--no-eval-at-end") == 2
    err = after_start(capsys.readouterr().err)
    assert err == (f"error: cannot write {tmp_path / 'checkpoint.pt'}: No space left on device; the last complete "
                   f"checkpoint is kept: make room, then continue with --resume {tmp_path}\n")
    assert checkpoint.load(tmp_path / "checkpoint.pt")["step"] == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_resume_into_a_folder_that_cannot_be_written_is_one_line(tmp_path, monkeypatch, capsys):
    assert run(tmp_path, "--steps", 2, "--no-eval-at-end") == 0

    def read_only(dir, prefix, suffix):
        raise PermissionError(errno.EACCES, "Permission denied", str(Path(dir) / f"{prefix}{suffix}"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", lambda dir, prefix, suffix: read_only(dir, prefix, suffix))
    capsys.readouterr()
    assert resume(tmp_path, "--steps", 4) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {tmp_path}/.metrics.jsonl..tmp: Permission denied")
    assert err.count("\n") == 1


def test_a_training_set_smaller_than_the_batch_is_one_line(tmp_path, capsys):
    assert run(tmp_path / "run", "--batch-size", 128, "--steps", 2) == 2
    err = capsys.readouterr().err
    assert err == ("error: the mnist training set holds 64 images, fewer than --batch-size 128: give a "
                   "--batch-size of at most 64\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option", ["--lr-d", "--lr-g", "--lr-q", "--clip", "--lambda-cat", "--epochs"])
def test_float_settings_beyond_float32_are_refused(tmp_path, capsys, option):
    assert run(tmp_path / "run", "--model", "infowgan", option, "1e39") == 2
    err = capsys.readouterr().err
    assert f"{option} must be a finite number of at most 3.403e+38 in size (it is held as a 32-bit float)" in err
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_a_crash_before_the_first_checkpoint_leaves_the_folder_free(tmp_path, monkeypatch):
    """A run that crashed with an unforeseen error kept nothing: the same command starts it again
    instead of being refused as "already holds a run"."""
    real = train_mod.Trainer.save_checkpoint
    with monkeypatch.context() as m:
        m.setattr(train_mod.Trainer, "save_checkpoint", lambda self: (_ for _ in ()).throw(ValueError("crash")))
        with pytest.raises(ValueError, match="crash"):
            run(tmp_path / "run", "--steps", 4, "--no-eval-at-end")
    assert train_mod.Trainer.save_checkpoint is real
    assert not (tmp_path / "run").exists()
    assert run(tmp_path / "run", "--steps", 4, "--no-eval-at-end") == 0


def test_epochs_beyond_the_limit_are_refused_at_once(tmp_path, capsys):
    assert run(tmp_path, "--epochs", 1e12) == 2
    assert "--epochs 1e+12 asks for 8e+12 batches of 8 images; at most 1e+07 (or give --steps)" in \
        capsys.readouterr().err


def test_out_of_cpu_memory_is_one_line(tmp_path, monkeypatch, capsys):
    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 400000000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(train_mod, "build_model", no_memory)
    assert run(tmp_path, "--steps", 2) == 2
    assert capsys.readouterr().err == ("error: out of memory while the run was set up: a smaller --batch-size or "
                                       "--noise-dim needs less\n")


def test_partial_writes_of_a_killed_process_are_removed_on_resume(tmp_path):
    assert run(tmp_path, "--steps", 2, "--no-eval-at-end") == 0
    left = tmp_path / ".checkpoint.pt.k2j4x1.tmp"
    left.write_bytes(b"\0" * 1000)  # what a SIGKILL during the write leaves
    assert resume(tmp_path, "--steps", 4) == 0
    assert not left.exists()


@pytest.mark.parametrize("edit, msg", [
    (lambda s: s.update(step="x"), "its step is 'x', not a count of steps"),
    (lambda s: s.update(step=-3), "its step is -3, not a count of steps"),
    (lambda s: s["rng"].update(torch=torch.zeros(7, dtype=torch.uint8)), "does not match its configuration"),
    (lambda s: s.pop("loader"), "does not match its configuration"),
])
def test_hand_edited_checkpoints_are_one_line(tmp_path, capsys, edit, msg):
    assert run(tmp_path, "--steps", 2, "--no-eval-at-end") == 0
    state = checkpoint.load(tmp_path / "checkpoint.pt")
    edit(state)
    checkpoint.save(state, tmp_path / "checkpoint.pt")
    capsys.readouterr()
    assert resume(tmp_path, "--steps", 4) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_a_metrics_line_that_is_no_row_is_left_out_with_a_warning(tmp_path, capsys):
    assert run(tmp_path, "--steps", 2, "--no-eval-at-end") == 0
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write("[1, 2]\n")
    assert resume(tmp_path, "--steps", 4) == 0
    assert f"warning: {tmp_path / 'metrics.jsonl'} line 3 is no metrics row" in capsys.readouterr().err
    steps = [json.loads(r)["step"] for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_a_bad_option_value_is_one_line_pointing_to_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--batch-size", "x"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("python -m fastinfo.train: error: argument --batch-size: invalid int value: "
                                       "'x' (the options: python -m fastinfo.train --help)\n")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_command_starts_is_one_line_and_exit_130(tmp_path, sig):
    """The signal lands while the command imports, before main() runs: here a stand-in torch whose
    import says it has begun, then takes a minute."""
    slow = tmp_path / "slow" / "torch"
    slow.mkdir(parents=True)
    mark = tmp_path / "importing"
    (slow / "__init__.py").write_text(f"import pathlib, time\npathlib.Path({str(mark)!r}).touch()\ntime.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "slow"), str(REPO)])}
    proc = subprocess.Popen([sys.executable, "-m", "fastinfo.train", "--out", str(tmp_path / "run")],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mark.exists(), "the stand-in torch was not imported"
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err
    assert err == "interrupted: while the command was starting; nothing was done\n"
    assert not (tmp_path / "run").exists()
