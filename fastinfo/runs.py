"""Run folders: their settings and checkpoints read back, their lock, and their clock.

A run folder holds config.json (the settings), checkpoint.pt (the state) and what training
writes beside them. train.py trains runs; evaluate, sweep, report and mine_check read them
through this module.
"""

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch

from fastinfo import atomic, checkpoint, registry
from fastinfo.codes import LatentSpec
from fastinfo.config import RESUMABLE_OVERRIDES, ConfigError, TrainConfig, make_config, not_a_run, read_saved

try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None


class RunError(RuntimeError):
    """A run folder, checkpoint or configuration that cannot be used; exit code 2."""


def process_age() -> float | None:
    """Seconds since this process started, as Linux's /proc tells it (to 10 ms); None elsewhere."""
    try:
        # the fields after the command name, which may hold spaces; the start time is field 22
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class RunClock:
    """When each part of a run ended, in seconds since the trainer was made, and how long the
    process had run by then (the interpreter and the imports; earlier runs of the same process)."""

    def __init__(self):
        self.process_age_at_start = process_age()
        self.origin = time.perf_counter()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.perf_counter() - self.origin, 3)

    def write(self, path: Path, **extra) -> None:
        age = self.process_age_at_start
        record = {"process_age_at_start": None if age is None else round(age, 2), "since_start": self.marks, **extra}
        atomic.write_text(path, json.dumps(record, indent=2) + "\n")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise RunError(f"unknown --device {name!r}; accepted: auto, cpu, cuda, cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"--device {name}: no CUDA GPU is available; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise RunError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s), "
                       f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def latent_spec(cfg: TrainConfig) -> LatentSpec:
    """The run's latent layout and prior: a GAN's as set, a VAE's all N(0, 1) beside the codes."""
    if registry.entry(cfg.model).family == "vae":
        return LatentSpec(cfg.noise_dim, cfg.cat_sizes, cfg.n_cont, "normal", 1.0, cont_prior="normal")
    return LatentSpec(cfg.noise_dim, cfg.cat_sizes, cfg.n_cont, cfg.noise_prior, cfg.noise_scale)


def build_model(cfg: TrainConfig, device: torch.device):
    return registry.entry(cfg.model).model_class()(cfg, latent_spec(cfg), device)


def load_run_config(run: Path, overrides: dict | None = None) -> TrainConfig:
    """The configuration of a saved run, with the overrides a resumed run may apply."""
    cfg_path = run / "config.json"
    why = not_a_run(run)
    if why:
        raise RunError(why)
    try:
        saved = read_saved(cfg_path)
    except ConfigError as e:
        raise RunError(str(e)) from None
    overrides = dict(overrides or {})
    if "epochs" in overrides and "steps" not in overrides:
        overrides["steps"] = None  # the run's own --steps would otherwise outrank the --epochs given now
    clash = {k: v for k, v in overrides.items()
             if k not in RESUMABLE_OVERRIDES and saved.get(k) != (list(v) if isinstance(v, tuple) else v)}
    if clash:
        raise RunError(
            f"cannot change {', '.join(sorted(clash))} when resuming {run}; only "
            f"{', '.join(sorted(RESUMABLE_OVERRIDES))} may change"
        )
    try:
        make_config(saved)
    except ConfigError as e:
        raise RunError(f"{cfg_path} does not hold a valid configuration: {e}") from None
    try:
        cfg = make_config({**saved, **overrides})
    except ConfigError as e:
        # a change a resume may make clashes with a saved setting: --device cpu with --cuda-graphs
        raise RunError(f"cannot resume {run} so: {e} (a setting not given now is the run's own, from "
                       f"{cfg_path}: give it to change it, a switch as --no-NAME)") from None
    if cfg.data_root is not None and "data_root" not in overrides and not Path(cfg.data_root).expanduser().is_dir():
        raise RunError(f"{run} read its data from {cfg.data_root} (its --data-root), which is no folder now: give "
                       f"--data-root the folder that holds {cfg.dataset}'s IDX files")
    return cfg


def check_checkpoint_settings(state: dict, cfg: TrainConfig, path: Path) -> None:
    """RunError unless the checkpoint state read from path was written with cfg's settings,
    those a resume may change aside (RESUMABLE_OVERRIDES, and the folder, which may move): a
    checkpoint copied from another run, or a config.json edited since, is refused by name."""
    saved = state.get("config")
    if not isinstance(saved, dict):
        raise RunError(f"{path} holds no settings of the run that wrote it: it is no checkpoint of a fastinfo run")
    # compared as JSON holds them: a tuple and a list of the same sizes are the same setting
    now, saved = json.loads(json.dumps(asdict(cfg))), json.loads(json.dumps(saved, default=str))
    differ = sorted(k for k in now.keys() & saved.keys()
                    if k not in RESUMABLE_OVERRIDES and k != "out" and saved[k] != now[k])
    if differ:
        shown = ", ".join(f"{k} {saved[k]!r} (the run's: {now[k]!r})" for k in differ)
        raise RunError(f"{path} was written by another run or with other settings: its {shown}; only "
                       f"{', '.join(sorted(RESUMABLE_OVERRIDES))} may differ. Put back the run's own checkpoint "
                       f"and config.json, or train a new run with --out")


def load_checkpoint_into(model, run: Path, cfg: TrainConfig, extra=None) -> dict:
    """Load run/checkpoint.pt into model (and through extra(state), anything else), after checking
    that it holds a run with cfg's settings; return it."""
    path = run / "checkpoint.pt"
    try:
        state = checkpoint.load(path)
        check_checkpoint_settings(state, cfg, path)
        model.load_state_dict(state)
        if extra is not None:
            extra(state)
    except RunError:
        raise
    except checkpoint.CheckpointError as e:
        raise RunError(str(e)) from None
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as e:
        raise RunError(f"checkpoint in {run} does not match its configuration: "
                       f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return state


def load_run(run: Path, device: str = "auto", data_root: str | None = None):
    """(TrainConfig, InfoModel with the checkpoint's weights, the checkpoint's state dict) of the
    saved run in folder run, on device: "auto" is this machine's GPU when it has one, else its
    CPU, wherever the run trained. A data_root replaces the run's own (data moved since it
    trained). RunError when the folder holds no run, or a checkpoint that fails its checks."""
    cfg = load_run_config(run, overrides=None if data_root is None else {"data_root": data_root})
    model = build_model(cfg, resolve_device(device))
    return cfg, model, load_checkpoint_into(model, run, cfg)


@contextlib.contextmanager
def exclusive_run(run: Path):
    """Within, this process alone trains run: a second one on the same folder (a fresh start or a
    --resume) stops with an error instead of interleaving its checkpoints and metrics with ours.
    The lock is the operating system's, so it ends with the process, a crash included. A folder,
    or a lock file, made here for a run that never started is removed again, and so is each folder
    above it made for it that is still empty."""
    made = [folder for folder in (run, *run.parents) if not folder.exists()]  # run's first, if made
    created, lock_path = run in made, run / ".lock"
    try:
        run.mkdir(parents=True, exist_ok=True)
        made_lock = not lock_path.exists()
        lock = open(lock_path, "a+")
    except OSError as e:
        raise RunError(f"cannot use {run} as a run folder: {e.strerror or e}") from None
    try:
        with lock:
            if fcntl is not None:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    lock.seek(0)
                    raise RunError(
                        f"{run} is being trained by another process (pid {lock.read().strip() or '?'}); "
                        f"let it finish or stop it, then continue with --resume {run}"
                    ) from None
                lock.truncate(0)
                lock.write(f"{os.getpid()}\n")
                lock.flush()
            # what a killed writer left half-written (a SIGKILL during a checkpoint's write)
            checkpoint.remove_partial_writes(run)
            yield
    finally:
        if not (run / "config.json").exists():
            if created:
                shutil.rmtree(run, ignore_errors=True)
                for folder in made[1:]:
                    try:
                        folder.rmdir()
                    except OSError:  # another run started in it meanwhile
                        break
            elif made_lock:
                lock_path.unlink(missing_ok=True)


def write_config(run: Path, cfg: TrainConfig) -> None:
    atomic.write_text(run / "config.json", json.dumps(asdict(cfg), indent=2) + "\n")
