"""Files replaced whole: a crash, or another process writing the same path at the same time,
leaves either the old file or one writer's complete new file, never a mix."""

import contextlib
import os
import tempfile
from pathlib import Path


def _process_umask() -> int:
    """The process's umask, read once at import: setting it to read it back is process-wide, and
    checkpoints are written from a worker thread."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# A temporary file is made 0600; a written file gets what the user's umask gives a new one, so a
# shared results folder or a web server can read it as it can the files the user makes.
FILE_MODE = 0o666 & ~_process_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike):
    """Yield a binary file to write; on a clean exit it is synced and renamed onto path.
    Each writer gets its own temporary name, so concurrent writers cannot truncate each other."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if hasattr(os, "fchmod"):  # (not on Windows, where the mode does not apply)
                os.fchmod(f.fileno(), FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """path's content replaced whole by text (UTF-8)."""
    with atomic_write(path) as f:
        f.write(text.encode())
