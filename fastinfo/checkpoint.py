"""Checkpoints written atomically (own temp file, fsync, rename) and read with weights_only=True."""

import os
from pathlib import Path

import torch

from fastinfo.atomic import atomic_write


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or belongs to another run."""


def save(state: dict, path: str | os.PathLike) -> None:
    """Write state to path so that a crash at any moment leaves either the old or the new file."""
    with atomic_write(path) as f:
        torch.save(state, f)


def load(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a fastinfo checkpoint ({e})") from None
    if not isinstance(state, dict) or "step" not in state or "models" not in state:
        raise CheckpointError(f"checkpoint {path} is not a fastinfo training checkpoint")
    return state
