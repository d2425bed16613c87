"""Info-WGAN and WGAN-GP: clipping, the penalty, the critic schedule, and the CLI."""

import json

import pytest
import torch

from fastinfo.codes import LatentSpec
from fastinfo.config import ConfigError, make_config
from fastinfo.optim import ClippedRMSprop
from fastinfo.wgan import InfoWGAN
from tests.helpers import run

pytestmark = pytest.mark.usefixtures("synthetic_mnist")


def model(name, **kw):
    torch.manual_seed(0)
    return InfoWGAN(make_config(dict(model=name, batch_size=8, **kw)), LatentSpec(), torch.device("cpu"))


def batches(n):
    return [torch.rand(8, 1, 28, 28) * 2 - 1 for _ in range(n)]


def test_clipping_covers_body_and_d_head_not_q_head():
    m = model("infowgan", n_critic=3)
    assert max(p.abs().max().item() for p in m.critic_params) > 0.01  # PyTorch's init is wider
    assert m.batches_per_step(0) == 3  # one fresh real batch per critic step
    metrics = m.step(batches(3), torch.Generator().manual_seed(0))
    assert max(p.abs().max().item() for p in m.critic_params) <= 0.01
    assert max(p.abs().max().item() for p in m.D.q_head.parameters()) > 0.01
    assert {"loss_d", "loss_g", "wasserstein", "info_c1", "info_c3"} <= set(metrics)
    assert isinstance(m.optimizers["D"], ClippedRMSprop) and m.cfg.lr_d == 5e-5
    assert m.optimizers["D"].defaults["clip_value"] == 0.01 and m.optimizers["G"].defaults["clip_value"] is None


def test_gp_models_do_not_clip_and_use_adam_with_layer_norm():
    m = model("infowgan-gp", n_critic=1)
    m.step(batches(1), torch.Generator().manual_seed(0))
    assert max(p.abs().max().item() for p in m.critic_params) > 0.01
    assert isinstance(m.optimizers["D"], torch.optim.Adam)
    assert m.optimizers["D"].defaults["betas"] == (0.5, 0.9)
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in m.D.modules())
    with pytest.raises(ConfigError, match="per sample"):
        make_config(dict(model="wgan-gp", critic_norm="batch"))


def test_wgan_schedule():
    m = model("wgan", wgan_schedule=True, n_critic=5)
    assert [m.batches_per_step(i) for i in (0, 24, 25, 499, 500, 501)] == [100, 100, 5, 5, 100, 5]
    assert model("wgan", n_critic=5).batches_per_step(0) == 5


def test_info_term_reaches_shared_body_through_critic_step():
    m = model("infowgan", n_critic=1, clip=1.0)
    before = [p.detach().clone() for p in m.D.body.parameters()]
    m_plain = model("wgan", n_critic=1, clip=1.0)
    batch = torch.rand(8, 1, 28, 28) * 2 - 1
    m.step([batch], torch.Generator().manual_seed(0))
    m_plain.step([batch], torch.Generator().manual_seed(0))
    # same init, same data and codes: only the L_I term makes the bodies differ
    moved = sum((a - b).abs().sum().item() for a, b in zip(m.D.body.parameters(), m_plain.D.body.parameters()))
    assert moved > 0 and any(not torch.equal(a, b) for a, b in zip(m.D.body.parameters(), before))


@pytest.mark.parametrize("name", ["infowgan", "infowgan-gp", "wgan"])
def test_cli_writes_every_output(tmp_path, name):
    assert run(tmp_path, "--model", name, "--steps", 2, "--n-critic", 2) == 0
    for f in ("loss_curves.png", "traverse_c1.png", "traverse_c3.png", "eval.json", "checkpoint.pt"):
        assert (tmp_path / f).is_file(), f
    assert (tmp_path / "info_curve.png").is_file() == name.startswith("info")
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert "wasserstein" in rows[0]
