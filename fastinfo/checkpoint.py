"""Checkpoints written atomically (own temp file, fsync, rename), verified on load (every
record's CRC-32, which torch.save writes into its zip archive and torch.load never checks) and
read with weights_only=True."""

import os
import shutil
import uuid
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from fastinfo.atomic import atomic_write


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or belongs to another run."""


def _os_error_in(error: BaseException) -> OSError | None:
    """The OSError behind error, if any: torch.save reports a failed write (a full disk) as a
    RuntimeError ("unexpected pos ...") chained from it."""
    while error is not None:
        if isinstance(error, OSError):
            return error
        error = error.__cause__ or error.__context__
    return None


def _keep(path: Path, previous: Path) -> None:
    """previous made to hold what path holds now: a second name for the same file, which the
    rename of a new file onto path leaves holding the old one (no copy of its bytes)."""
    link = previous.with_name(f".{previous.name}.{uuid.uuid4().hex}.tmp")
    try:
        os.link(path, link)
    except OSError:  # a file system without hard links
        with open(path, "rb") as src, atomic_write(previous) as dst:
            shutil.copyfileobj(src, dst)
        return
    os.replace(link, previous)


def save(state: dict, path: str | os.PathLike, previous: str | os.PathLike | None = None) -> None:
    """Write state to path so that a crash at any moment leaves either the old or the new file.
    With previous, the file path held before is kept there (a hard link, or a copy where the file
    system has none). A failed write raises OSError, whatever torch raised."""
    path = Path(path)
    try:
        if previous is not None and path.is_file():
            _keep(path, Path(previous))
        with atomic_write(path) as f:
            torch.save(state, f)
    except RuntimeError as e:
        cause = _os_error_in(e)
        if cause is None:
            raise
        raise OSError(cause.errno, cause.strerror or str(cause), str(path)) from e


def _cpu_copy(obj):
    """obj with every tensor copied to CPU memory: what a write made later will find unchanged."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj


class BackgroundWriter:
    """Checkpoints written while training goes on. save() copies the state to CPU memory, all
    the caller waits for (a fraction of the time serialising and syncing the file takes), and
    writes the copy on a worker thread, atomically as :func:`save` does. One write at a time:
    save() first waits for the previous one. wait()
    returns when the last write is on disk and raises its error, if it failed. A write under
    way when the process ends is finished first (Python joins the worker at exit); a killed
    process leaves the previous checkpoint, whole."""

    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastinfo-checkpoint")
        self._pending: Future | None = None

    def save(self, state: dict, path: str | os.PathLike, previous: str | os.PathLike | None = None) -> None:
        self.wait()
        self._pending = self._pool.submit(save, _cpu_copy(state), path, previous)

    def discard(self, path: str | os.PathLike) -> None:
        """Delete path once the write under way (if any) is done, on the worker: the caller waits
        for neither. A failed write's error still reaches the next wait()."""
        def after(prior: Future | None):
            if prior is not None:
                prior.result()
            Path(path).unlink(missing_ok=True)

        self._pending = self._pool.submit(after, self._pending)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """wait(), then end the worker thread."""
        try:
            self.wait()
        finally:
            self._pool.shutdown()


def verify(path: Path) -> None:
    """CheckpointError unless every record of the archive at path has the CRC-32 it was written
    with: one flipped bit in a weight (0.0117 read as 3.98e36) otherwise loads without a word."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a fastinfo checkpoint ({e})") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt: its record {bad} does not match the CRC-32 it "
                              f"was written with (a damaged disk or copy); it cannot be used")


def load(path: str | os.PathLike, mmap: bool = False) -> dict:
    """The state saved at path, verified; with mmap=True its tensors are mapped from the file,
    not read nor verified (cheap when only the step is wanted)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if not mmap:
        verify(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a fastinfo checkpoint ({e})") from None
    if not isinstance(state, dict) or "step" not in state or "models" not in state:
        raise CheckpointError(f"checkpoint {path} is not a fastinfo training checkpoint")
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"checkpoint {path} is corrupt: its step is {step!r}, not a count of steps")
    return state


def remove_partial_writes(folder: Path) -> None:
    """Delete the temporary files of writes that a killed process left in folder (a SIGKILL
    during a checkpoint's write leaves one of its size). Only for a folder whose writer holds its
    lock: another's write under way would be cut."""
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def saved_step(path: str | os.PathLike) -> int:
    """The step of the checkpoint at path; 0 without a readable one."""
    try:
        return load(path, mmap=True)["step"]
    except CheckpointError:
        return 0
