"""Checkpoints written in the background (the state as it was at save(), errors raised at
wait()), the one before kept on request, and verified when read."""

import os
import threading
import zipfile

import pytest
import torch

from fastinfo import checkpoint


def test_write_holds_the_state_of_save_time_while_training_goes_on(tmp_path, monkeypatch):
    release, real_save = threading.Event(), checkpoint.save

    def slow_save(state, path, previous=None):
        assert release.wait(10)
        real_save(state, path, previous)

    monkeypatch.setattr(checkpoint, "save", slow_save)
    weights, betas = torch.arange(4.0), (0.5, 0.9)
    state = {"step": 3, "models": {"G": {"w": weights}}, "optimizers": [{"betas": betas, "params": [0]}]}
    writer, path = checkpoint.BackgroundWriter(), tmp_path / "checkpoint.pt"
    writer.save(state, path)
    assert not path.exists()  # save() returned with the write still to come
    weights.add_(100)  # the next training step updates the weights in place
    release.set()
    writer.close()
    saved = checkpoint.load(path)
    assert torch.equal(saved["models"]["G"]["w"], torch.arange(4.0)) and saved["step"] == 3
    assert saved["optimizers"] == [{"betas": betas, "params": [0]}]


def test_a_failed_write_raises_at_the_next_save_or_wait(tmp_path):
    (tmp_path / "taken").mkdir()  # a folder where the checkpoint file should go
    writer = checkpoint.BackgroundWriter()
    writer.save({"step": 1, "models": {}}, tmp_path / "taken")
    with pytest.raises(OSError):
        writer.wait()
    writer.save({"step": 2, "models": {}}, tmp_path / "ok.pt")  # the writer goes on working
    writer.close()
    assert checkpoint.load(tmp_path / "ok.pt")["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.pt", "taken"]  # no temp file left


def test_the_replaced_checkpoint_is_kept_on_request_and_discarded_in_order(tmp_path):
    path, previous = tmp_path / "checkpoint.pt", tmp_path / "previous.pt"
    writer = checkpoint.BackgroundWriter()
    writer.save({"step": 1, "models": {}}, path, previous)  # nothing to keep yet
    writer.save({"step": 2, "models": {}}, path, previous)
    writer.wait()
    assert checkpoint.load(path)["step"] == 2 and checkpoint.load(previous)["step"] == 1
    writer.save({"step": 3, "models": {}}, path, previous)
    writer.discard(previous)  # queued after the write: it removes the step-2 copy it made
    writer.close()
    assert checkpoint.load(path)["step"] == 3 and not previous.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_without_hard_links_the_replaced_checkpoint_is_copied(tmp_path, monkeypatch):
    path, previous = tmp_path / "checkpoint.pt", tmp_path / "previous.pt"
    checkpoint.save({"step": 1, "models": {}}, path)

    def no_links(*args):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    checkpoint.save({"step": 2, "models": {}}, path, previous)
    assert checkpoint.load(path)["step"] == 2 and checkpoint.load(previous)["step"] == 1


def test_a_record_whose_crc_does_not_match_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    checkpoint.save({"step": 1, "models": {"G": {"w": torch.arange(64.0)}}}, path)
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename)
    blob = bytearray(path.read_bytes())
    # past the local header, whose name and extra-field lengths are at bytes 26 and 28
    name_len, extra_len = (int.from_bytes(blob[info.header_offset + i : info.header_offset + i + 2], "little")
                           for i in (26, 28))
    start = info.header_offset + 30 + name_len + extra_len
    blob[start + 5] ^= 0x01  # one bit of a weight's bytes
    path.write_bytes(bytes(blob))
    with pytest.raises(checkpoint.CheckpointError, match=f"record {info.filename} does not match the CRC-32"):
        checkpoint.load(path)
    assert checkpoint.saved_step(path) == 1  # the step alone is read without the check
    path.write_bytes(b"not a zip archive")
    with pytest.raises(checkpoint.CheckpointError, match="is corrupt or not a fastinfo checkpoint"):
        checkpoint.load(path)
