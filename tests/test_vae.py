"""The VAE and InfoVAE: Gumbel-softmax sampling, the capacity schedule, where L_I's gradient goes,
and the models from the command line."""

import json

import pytest
import torch

from fastinfo import checkpoint
from fastinfo.config import ConfigError, make_config
from fastinfo.runs import build_model
from fastinfo.train import main
from fastinfo.vae import capacity, gumbel_softmax
from tests.helpers import FAST, after_start, run

pytestmark = pytest.mark.usefixtures("synthetic_mnist")


def test_gumbel_softmax_samples_each_code_by_its_probabilities():
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5, 0.5]]).expand(20000, 5)
    uniform = torch.rand(20000, 5, generator=torch.Generator().manual_seed(0)).clamp_(min=1e-10)
    soft = gumbel_softmax(logits, uniform, 0.67, (3, 2))
    torch.testing.assert_close(soft[:, :3].sum(1), torch.ones(20000))
    torch.testing.assert_close(soft[:, 3:].sum(1), torch.ones(20000))
    # the argmax of logits + Gumbel noise is a sample of softmax(logits) (the Gumbel-max trick)
    freq = torch.bincount(soft[:, :3].argmax(1), minlength=3).float() / 20000
    torch.testing.assert_close(freq, torch.softmax(logits[0, :3], 0), atol=0.015, rtol=0)


def test_straight_through_is_one_hot_forward_with_the_relaxed_gradient():
    logits = torch.randn(6, 10, requires_grad=True)
    uniform = torch.rand(6, 10, generator=torch.Generator().manual_seed(1)).clamp_(min=1e-10)
    weights = torch.randn(6, 10)
    hard = gumbel_softmax(logits, uniform, 0.5, (10,), hard=True)
    assert set(hard.detach().unique().tolist()) == {0.0, 1.0} and (hard.detach().sum(1) == 1).all()
    (grad_hard,) = torch.autograd.grad((hard * weights).sum(), logits)
    (grad_soft,) = torch.autograd.grad((gumbel_softmax(logits, uniform, 0.5, (10,)) * weights).sum(), logits)
    torch.testing.assert_close(grad_hard, grad_soft)
    soft = gumbel_softmax(logits, uniform, 0.5, (10,))
    assert torch.equal(hard.detach().argmax(1), soft.detach().argmax(1))


def test_capacity_rises_linearly_then_stays():
    values = [capacity(torch.tensor(t), 5.0, 100).item() for t in (0, 25, 100, 1000)]
    assert values == pytest.approx([0.0, 1.25, 5.0, 5.0])


def models_with_and_without_information():
    out = []
    for name in ("vae", "infovae"):
        cfg = make_config(dict(model=name, batch_size=8))
        torch.manual_seed(0)
        out.append(build_model(cfg, torch.device("cpu")))
    return out


def test_the_information_term_trains_encoder_and_decoder():
    """The same weights and noise with and without L_I: the gradients differ in both networks."""
    vae, infovae = models_with_and_without_information()
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    grads = []
    for m in (vae, infovae):
        gen = torch.Generator().manual_seed(3)
        eps, uniform = torch.randn(8, 10, generator=gen), torch.rand(8, 10, generator=gen).clamp_(min=1e-10)
        prior = infovae.sample_latent(8, torch.Generator().manual_seed(4))
        loss, metrics = m.vae_loss(real, eps, uniform, prior)
        assert ("info_c1" in metrics) == m.use_q
        params = {name: list(net.parameters()) for name, net in m.networks.items()}
        flat = torch.autograd.grad(loss, [p for ps in params.values() for p in ps], allow_unused=True)
        grads.append({"encoder": flat[: len(params["encoder"])], "decoder": flat[len(params["encoder"]) :]})
    for name in ("encoder", "decoder"):
        moved = sum((a - b).abs().sum().item() for a, b in zip(grads[0][name], grads[1][name]) if a is not None)
        assert moved > 0, f"L_I gave the {name} no gradient"


def test_the_continuous_latents_have_a_normal_prior_and_entropy():
    _, infovae = models_with_and_without_information()
    z, cat, cont = infovae.spec.sample(20000, generator=torch.Generator().manual_seed(0))
    assert cont.abs().max() > 2 and abs(cont.std().item() - 1) < 0.03
    assert infovae.entropy[1].item() == pytest.approx(1.4189385, abs=1e-6)  # ln(2 pi e) / 2


@pytest.mark.parametrize("model", ["vae", "infovae"])
def test_trains_evaluates_and_draws_from_the_command_line(tmp_path, model):
    assert run(tmp_path, "--model", model, "--steps", 4, "--sample-every", 2) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    assert 0 <= result["c1_accuracy"] <= 1 and result["test_neg_elbo"] > 0 and result["test_reconstruction_bce"] > 0
    for name in ("reconstructions.png", "loss_curves.png", "traverse_c1.png", "traverse_c3.png"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "info_curve.png").is_file() == (model == "infovae")
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "reconstruction", "kl_cat", "kl_cont"} <= rows[-1].keys()
    assert ("info_c1" in rows[-1]) == (model == "infovae")
    assert checkpoint.load(tmp_path / "checkpoint.pt")["step_count"] == 4


def test_vae_settings_are_checked_and_gan_settings_named_unused(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--model vae needs a categorical code: give --cat-sizes"):
        make_config(dict(model="vae", cat_sizes=()))
    with pytest.raises(ConfigError, match="--temperature must be positive"):
        make_config(dict(model="infovae", temperature=0.0))
    assert main([*FAST, "--out", str(tmp_path), "--model", "infovae", "--noise-prior", "normal", "--steps", "1",
                 "--no-eval-at-end"]) == 0
    err = after_start(capsys.readouterr().err)
    assert "warning: --model infovae does not use --noise-prior (only gan, infogan" in err
