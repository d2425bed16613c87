"""Files replaced whole: a failed write keeps the old file; interleaved writers never mix."""

import pytest

from fastinfo.atomic import atomic_write


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
