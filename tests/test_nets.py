"""Network shapes and the InfoGAN wiring: L_I must reach G, the Q head and the shared body."""

import pytest
import torch

from fastinfo.codes import LatentSpec
from fastinfo.config import make_config
from fastinfo.infogan import InfoGAN
from fastinfo.nets import Discriminator, Generator


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
