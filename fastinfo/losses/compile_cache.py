"""The fused ops' mark in torch.compile's cache key."""

import functools
import hashlib
import importlib.util
from pathlib import Path

import torch

from fastinfo.losses.backend import HAVE_TRITON


def fingerprint(folders) -> str:
    """A hash of the names and contents of the Python files in these folders."""
    digest = hashlib.sha256()
    for path in sorted(f for folder in folders for f in Path(folder).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def sources_fingerprint() -> str:
    """fingerprint of the fused ops' sources: their kernels, wrappers and autograd formulas."""
    folders = [Path(__file__).parent]
    if HAVE_TRITON:
        folders += importlib.util.find_spec("fastinfo.kernels").submodule_search_locations
    return fingerprint(folders)


def tag_compile_cache() -> None:
    """Add the fused ops' fingerprint to torch.compile's cache key tag. The caches know a custom
    op by its name, not its code (pytorch/pytorch#144344): a graph compiled before fastinfo
    changed would call the old op, or keep its old backward formula."""
    tag = f"fastinfo-{sources_fingerprint()}"
    current = torch.compiler.config.cache_key_tag
    if tag not in current.split("+"):
        torch.compiler.config.cache_key_tag = f"{current}+{tag}" if current else tag
