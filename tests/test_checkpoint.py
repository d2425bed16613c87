"""Checkpoints written in the background: the state as it was at save(), errors raised at wait()."""

import threading

import pytest
import torch

from fastinfo import checkpoint


def test_write_holds_the_state_of_save_time_while_training_goes_on(tmp_path, monkeypatch):
    release, real_save = threading.Event(), checkpoint.save

    def slow_save(state, path):
        assert release.wait(10)
        real_save(state, path)

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
