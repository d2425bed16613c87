"""Network shapes and the InfoGAN wiring: L_I must reach G, the Q head and the shared body."""

import pytest
import torch

from fastinfo import registry, runner
from fastinfo.codes import LatentSpec
from fastinfo.config import make_config
from fastinfo.infogan import InfoGAN
from fastinfo.minegan import image_encoder
from fastinfo.nets import BODY_FEATURES, IMAGE_SIZES, Discriminator, Encoder, Generator, d_body
from tests.helpers import build


def test_shapes():
    spec = LatentSpec(noise_dim=62, cat_sizes=(10,), n_cont=2)
    G, D = Generator(spec.input_dim), Discriminator(spec, learn_std=True)
    x = G(torch.randn(5, 74))
    assert x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    d, (cat, mean, log_std) = D(x)
    assert d.shape == (5,) and cat.shape == (5, 10) and mean.shape == (5, 2) and log_std.shape == (5, 2)
    d, q = Discriminator(spec, learn_std=False)(x, with_q=False)
    assert q is None
    _, (_, _, log_std) = Discriminator(spec, learn_std=False)(x)
    assert log_std is None
    # the paper's layer sizes
    assert [m.out_features for m in G.net if isinstance(m, torch.nn.Linear)] == [1024, 6272]
    assert D.body[6].in_features == 6272 and D.body[6].out_features == 1024
    assert D.q_head.net[0].out_features == 128


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_norm_options(norm):
    D = Discriminator(LatentSpec(), norm=norm)
    d, _ = D(torch.randn(3, 1, 28, 28))
    assert d.shape == (3,)
    with pytest.raises(ValueError, match="norm must be one of"):
        Discriminator(LatentSpec(), norm="group")


@pytest.mark.parametrize("backend", ["fused", "torch"])
def test_info_term_trains_generator_q_head_and_shared_body(backend):
    cfg = make_config(dict(model="infogan", loss_backend=backend))
    model = InfoGAN(cfg, LatentSpec(), torch.device("cpu"))
    z, cat, cont = model.spec.sample(8, generator=torch.Generator().manual_seed(0))
    _, q = model.D(model.G(model.spec.g_input(z, cat, cont)))
    nll, _ = model.info_nll(q, cat, cont)
    nll.backward()
    groups = {
        "G": model.G.parameters(),
        "Q head": model.D.q_head.parameters(),
        "shared body": model.D.body.parameters(),
    }
    for name, params in groups.items():
        # every weight matrix or kernel (biases just before a batch norm get ~0 by design)
        weights = [p for p in params if p.dim() >= 2]
        assert weights and all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights), (
            f"L_I gives no gradient to {name}"
        )
    assert all(p.grad is None for p in model.D.d_head.parameters())


def test_training_step_updates_q_and_body_from_info_term_only_for_infogan():
    def q_head_change(model_name):
        torch.manual_seed(0)
        cfg = make_config(dict(model=model_name))
        model = InfoGAN(cfg, LatentSpec(), torch.device("cpu"))
        before = [p.detach().clone() for p in model.D.q_head.parameters()]
        model.step([torch.rand(8, 1, 28, 28) * 2 - 1], torch.Generator().manual_seed(1))
        return sum((p - b).abs().sum().item() for p, b in zip(model.D.q_head.parameters(), before))

    assert q_head_change("infogan") > 0
    assert q_head_change("gan") == 0  # the baseline has no Q term


def test_batch_norm_keeps_running_statistics_but_no_batch_count():
    """The count of training batches is gone (a kernel per call, read only with momentum=None);
    the running statistics that eval mode uses still update, and a state dict written with the
    counts (by earlier versions) still loads."""
    spec = LatentSpec(noise_dim=62, cat_sizes=(10,), n_cont=2)
    G, D = Generator(spec.input_dim), Discriminator(spec)
    norms = [m for net in (G, D) for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 6 and all(m.num_batches_tracked is None for m in norms)
    before = G.net[1].running_mean.clone()
    D(G(torch.randn(8, spec.input_dim)))
    assert not torch.equal(G.net[1].running_mean, before)
    with_counts = {**G.state_dict(), "net.1.num_batches_tracked": torch.tensor(7)}
    fresh = Generator(spec.input_dim)
    fresh.load_state_dict(with_counts)
    torch.testing.assert_close(fresh.state_dict(), G.state_dict())


@pytest.mark.parametrize("model_name", ["infogan", "infowgan", "minegan"])
def test_generator_step_gives_d_no_gradient_and_leaves_it_trainable(model_name):
    """G's step runs D (and MINE's T) frozen: their gradients stay those of their own step, and
    they are trainable again afterwards."""
    from fastinfo.runs import build_model

    model = build_model(make_config(dict(model=model_name, batch_size=8)), torch.device("cpu"))
    opt_d, at_d_step = model.optimizers["D"], {}
    d_step = opt_d.step

    def recording_step(*args, **kwargs):
        at_d_step.update({id(p): p.grad.clone() for g in opt_d.param_groups for p in g["params"] if p.grad is not None})
        return d_step(*args, **kwargs)

    opt_d.step = recording_step
    reals = [torch.rand(8, 1, 28, 28) * 2 - 1 for _ in range(model.batches_per_step(0))]
    model.step(reals, torch.Generator().manual_seed(1))
    networks = [model.D, *([model.mine] if model_name == "minegan" else [])]
    assert at_d_step and all(p.requires_grad for net in networks for p in net.parameters())
    for g in opt_d.param_groups:
        for p in g["params"]:
            if id(p) in at_d_step:
                assert torch.equal(p.grad, at_d_step[id(p)])


@pytest.mark.parametrize("size", IMAGE_SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_every_image_size_has_networks_of_that_size(size, channels):
    spec = LatentSpec(noise_dim=20, cat_sizes=(10, 4), n_cont=3)
    G = Generator(spec.input_dim, channels, image_size=size)
    x = G(torch.randn(3, spec.input_dim))
    assert x.shape == (3, channels, size, size) and x.min() >= -1 and x.max() <= 1
    d, (cat, mean, log_std) = Discriminator(spec, channels=channels, image_size=size)(x)
    assert d.shape == (3,) and cat.shape == (3, 14) and mean.shape == log_std.shape == (3, 3)
    assert d_body(0.1, "layer", channels, size)(x).shape == (3, BODY_FEATURES[size])
    cat, mean, log_std = Encoder(spec, channels=channels, image_size=size)(x)
    assert cat.shape == (3, 14) and mean.shape == log_std.shape == (3, 23)
    logits = Generator(spec.input_dim, channels, logits=True, image_size=size)(torch.randn(3, spec.input_dim))
    assert logits.shape == (3, channels, size, size)
    assert image_encoder(0.1, channels, size)(x).shape == (3, 256)


def test_the_32_and_64_networks_have_their_papers_layer_sizes():
    spec = LatentSpec(noise_dim=124, cat_sizes=(10,) * 4, n_cont=4)  # the InfoGAN paper's SVHN codes
    G, D = Generator(spec.input_dim, 3, image_size=32), Discriminator(spec, channels=3, image_size=32)
    assert [m.out_features for m in G.net if isinstance(m, torch.nn.Linear)] == [2 * 2 * 448]
    assert [m.out_channels for m in G.net if isinstance(m, torch.nn.ConvTranspose2d)] == [256, 128, 64, 3]
    assert [m.out_channels for m in D.body if isinstance(m, torch.nn.Conv2d)] == [64, 128, 256]
    assert D.d_head.in_features == D.q_head.net[0].in_features == 256 * 4 * 4
    G, D = Generator(12, image_size=64), Discriminator(LatentSpec(noise_dim=5, cat_sizes=(), n_cont=5), image_size=64)
    assert [m.out_features for m in G.net if isinstance(m, torch.nn.Linear)] == [128, 4 * 4 * 64]
    assert [m.out_channels for m in G.net if isinstance(m, torch.nn.ConvTranspose2d)] == [64, 32, 32, 1]
    assert [m.out_channels for m in D.body if isinstance(m, torch.nn.Conv2d)] == [32, 32, 64, 64]
    assert D.d_head.in_features == 128


def test_a_size_without_networks_is_refused():
    with pytest.raises(ValueError, match="there are networks for images of side 28, 32, 64, not 48"):
        Generator(74, image_size=48)
    with pytest.raises(ValueError, match="not 16"):
        Discriminator(LatentSpec(), image_size=16)


@pytest.mark.parametrize("model", registry.names())
@pytest.mark.parametrize("size", [32, 64])
def test_every_model_trains_at_every_image_size(model, size):
    m, step = build(model, torch.device("cpu"), runner.EagerStep, B=4, image_size=size)
    before = [p.detach().clone() for net in m.networks.values() for p in net.parameters()]
    metrics = step(0)
    assert all(torch.isfinite(v).all() for v in metrics.values())
    after = [p for net in m.networks.values() for p in net.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    assert m.generate(*m.spec.sample(2, m.device, torch.Generator().manual_seed(0))).shape == (2, 1, size, size)
