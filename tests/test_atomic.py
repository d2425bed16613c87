"""Files replaced whole: a failed write keeps the old file; interleaved writers never mix."""

import os
import stat
import subprocess
import sys

import pytest

from fastinfo.atomic import atomic_write, write_text


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "state.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write(b"half of the new")
        raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]


def test_interleaved_writers_each_leave_a_whole_file(tmp_path):
    path = tmp_path / "sub" / "state.bin"
    with atomic_write(path) as outer:
        outer.write(b"first writer, ")
        with atomic_write(path) as inner:
            inner.write(b"second writer")
        assert path.read_bytes() == b"second writer"
        outer.write(b"finished last")
    assert path.read_bytes() == b"first writer, finished last"
    assert [p.name for p in path.parent.iterdir()] == ["state.bin"]


def test_write_text_replaces_the_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    path.write_text("row 1\nrow 2\nrow 3\n")
    write_text(path, "row 1\nrow 2\n")
    assert path.read_text() == "row 1\nrow 2\n"
    # killed before the rename: the old content stays, not a truncated file
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        write_text(path, "ü")
    assert path.read_text() == "row 1\nrow 2\n" and [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


def test_figures_are_replaced_whole(tmp_path, monkeypatch):
    import torch

    from fastinfo import plots

    grid, curves = tmp_path / "traverse_c1.png", tmp_path / "loss_curves.png"
    plots.traversal_grid(torch.rand(20, 1, 28, 28) * 2 - 1, 10, grid)
    plots.loss_curves([{"step": 1, "loss_d": 1.0, "loss_g": 2.0}], curves, "title")
    before = {p: p.read_bytes() for p in (grid, curves)}
    assert all(b.startswith(b"\x89PNG") for b in before.values())
    # killed before the rename: the figures of the last time stay whole
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        plots.traversal_grid(torch.zeros(20, 1, 28, 28), 10, grid)
    with pytest.raises(KeyboardInterrupt):
        plots.loss_curves([{"step": 1, "loss_d": 0.0, "loss_g": 0.0}], curves, "title")
    assert {p: p.read_bytes() for p in (grid, curves)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss_curves.png", "traverse_c1.png"]


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="file modes are POSIX")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_written_file_has_the_mode_the_umask_gives_a_new_one(tmp_path, umask):
    """Not the temporary file's 0600: a shared results folder or a web server must read it. The
    umask is read at import, so each case runs in a process of its own."""
    path = tmp_path / "config.json"
    code = f"import os; os.umask({umask}); from fastinfo.atomic import write_text; write_text({str(path)!r}, 'x')"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
