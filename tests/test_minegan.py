"""MINE-GAN: adaptive gradient clipping, the training step and the CLI."""

import json

import pytest
import torch

from fastinfo import checkpoint
from fastinfo.codes import LatentSpec
from fastinfo.config import ConfigError, make_config
from fastinfo.minegan import MineGAN, adaptive_clip
from tests.helpers import run

pytestmark = pytest.mark.usefixtures("synthetic_mnist")


def test_adaptive_clip_rescales_only_a_larger_mi_gradient():
    g_gan = [torch.tensor([3.0, 0.0]), torch.tensor([0.0])]  # norm 3
    g_mi = [torch.tensor([0.0, 8.0]), torch.tensor([6.0])]  # norm 10
    out = adaptive_clip(g_gan, g_mi)
    torch.testing.assert_close(out[0], torch.tensor([0.0, 2.4]))
    torch.testing.assert_close(out[1], torch.tensor([1.8]))
    small = [torch.tensor([0.0, 0.8]), torch.tensor([0.6])]  # norm 1 < 3: unchanged
    assert all(torch.allclose(a, b) for a, b in zip(adaptive_clip(g_gan, small), small))
    zero = [torch.zeros(2), torch.zeros(1)]
    assert all(torch.equal(a, b) for a, b in zip(adaptive_clip(g_gan, zero), zero))
    with pytest.raises(ValueError, match="one gradient a parameter"):
        adaptive_clip(g_gan, small[:1])


@pytest.mark.parametrize("codes", ["cont", "all"])
def test_step_trains_g_d_and_t(codes):
    torch.manual_seed(0)
    m = MineGAN(make_config(dict(model="minegan", batch_size=8, mine_codes=codes)), LatentSpec(), torch.device("cpu"))
    assert m.mine.critic.c_enc.in_features == (2 if codes == "cont" else 12)
    before = {n: [p.detach().clone() for p in net.parameters()] for n, net in
              (("G", m.G), ("T", m.mine), ("D", m.D.body))}
    metrics = m.step([torch.rand(8, 1, 28, 28) * 2 - 1], torch.Generator().manual_seed(0))
    assert {"loss_d", "loss_g", "mi_estimate"} <= set(metrics)
    for name, net in (("G", m.G), ("T", m.mine), ("D", m.D.body)):
        assert any(not torch.equal(a, b) for a, b in zip(net.parameters(), before[name])), name
    assert torch.isfinite(m.mine.log_ema)


def test_minegan_needs_codes_for_mine():
    with pytest.raises(ConfigError, match="minegan needs continuous codes"):
        make_config(dict(model="minegan", n_cont=0))


def test_cli_outputs(tmp_path):
    """(Its exact resume, T's moving average included, is tests/test_train.py's.)"""
    assert run(tmp_path / "a", "--model", "minegan", "--steps", 4, "--no-eval-at-end") == 0
    for f in ("mi_curve.png", "loss_curves.png", "traverse_c2.png", "checkpoint.pt"):
        assert (tmp_path / "a" / f).is_file(), f
    rows = [json.loads(r) for r in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert "mi_estimate" in rows[0]
    assert torch.isfinite(checkpoint.load(tmp_path / "a" / "checkpoint.pt")["models"]["T"]["log_ema"])
