"""The first-order gradient penalty against autograd's double backward (the reference), in
float64 on fresh random critics and inputs, and its bad-input errors."""

import pytest
import torch
from torch import nn

from fastinfo import losses
from fastinfo.codes import LatentSpec
from fastinfo.losses import reference
from fastinfo.nets import Discriminator


def paper_critic(norm: str) -> nn.Sequential:
    """The InfoGAN paper's critic (body and score head) with every parameter moved off its
    initial value, so that layer norm's scale and shift matter."""
    D = Discriminator(LatentSpec(), slope=0.1, norm=norm).double()
    with torch.no_grad():
        for p in D.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return nn.Sequential(*D.body, D.d_head)


def odd_critic() -> nn.Sequential:
    """Every supported layer, with the awkward settings: a stride whose last window skips a row
    (output padding needed), groups and dilation, layer norm without affine and over one dim."""
    critic = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1),  # 10x10 -> 5x5, whose transpose gives 9x9 without output padding
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2),  # 5x5 -> 3x3
        nn.LayerNorm([6, 3, 3], elementwise_affine=False),
        nn.Identity(),
        nn.Flatten(),
        nn.Linear(54, 7),
        nn.LeakyReLU(0.2),
        nn.LayerNorm(7),
        nn.Linear(7, 1),
    ).double()
    with torch.no_grad():
        for p in critic.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return critic


def penalty_and_grads(fn, critic, real, fake, eps):
    """(penalty, its gradients with respect to the critic's parameters and the real batch)."""
    real = real.detach().requires_grad_(True)
    gp = fn(critic, real, fake, eps)
    grads = torch.autograd.grad(gp, [*critic.parameters(), real], allow_unused=True, materialize_grads=True)
    return gp, grads


@pytest.mark.parametrize("critic, shape", [
    (lambda: paper_critic("layer"), (5, 1, 28, 28)),
    (lambda: paper_critic("none"), (3, 1, 28, 28)),
    (odd_critic, (7, 3, 10, 10)),
])
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_matches_double_backward_in_float64(critic, shape, device):
    critic = critic().to(device)
    real = torch.randn(shape, dtype=torch.float64, device=device)
    # a non-contiguous batch: the layout a caller's slicing or transposing leaves
    fake = torch.randn(shape[0], shape[1], shape[3], shape[2], dtype=torch.float64, device=device).transpose(2, 3)
    eps = torch.rand(shape[0], 1, 1, 1, dtype=torch.float64, device=device)
    got, got_grads = penalty_and_grads(losses.gradient_penalty, critic, real, fake, eps)
    want, want_grads = penalty_and_grads(reference.gradient_penalty, critic, real, fake, eps)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
    names = [n for n, _ in critic.named_parameters()] + ["real"]
    for name, g, w in zip(names, got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12, msg=lambda m, name=name: f"d penalty / d {name}: {m}")


def test_rows_riding_along_get_features_but_no_gradient():
    """grad_from: the first rows share the forward (their features are the body's output) and the
    gradient covers the others only, equal to autograd's for those rows alone; the weight
    gradients through it too."""
    from fastinfo.losses.penalty import critic_features_and_input_grad

    critic = paper_critic("layer")
    x = torch.randn(7, 1, 28, 28, dtype=torch.float64)
    features, grad = critic_features_and_input_grad(critic, x, grad_from=4)
    torch.testing.assert_close(features, critic[:-1](x), rtol=1e-10, atol=1e-12)
    tail = x[4:].clone().requires_grad_(True)
    (want,) = torch.autograd.grad(critic(tail).sum(), tail, create_graph=True)
    torch.testing.assert_close(grad, want, rtol=1e-10, atol=1e-12)
    params = list(critic.parameters())[:-1]  # the score's bias has no effect on a gradient
    for g, w in zip(torch.autograd.grad((grad**2).sum() + features.sum(), params),
                    torch.autograd.grad((want**2).sum() + critic[:-1](x).sum(), params)):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("fn", [losses.gradient_penalty, reference.gradient_penalty])
def test_linear_critic_hand_computed(fn):
    """D(x) = <w, x> + b has gradient w everywhere: the penalty is (||w|| - 1)^2 at any x_hat."""
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    gp = fn(critic, real, fake, torch.rand(4, 1, 1, 1))
    assert gp.item() == pytest.approx((critic[1].weight.norm().item() - 1) ** 2, rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_critic_is_close_to_float64(dtype):
    """A critic held in bf16 or fp16 (no autocast): layer norm's statistics and gradient in fp32,
    every tensor that meets a weight in the network's dtype, as autograd would have it."""
    critic = paper_critic("layer")
    real, fake = torch.rand(6, 1, 28, 28, dtype=torch.float64) * 2 - 1, torch.rand(6, 1, 28, 28, dtype=torch.float64)
    eps = torch.rand(6, 1, 1, 1, dtype=torch.float64)
    want = reference.gradient_penalty(critic, real, fake, eps)
    critic = critic.to(dtype)
    got = losses.gradient_penalty(critic, real.to(dtype), fake.to(dtype), eps.to(dtype))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=5e-2, atol=1e-3)
    grads = torch.autograd.grad(got, list(critic.parameters())[:-1])
    assert all(g.dtype == dtype and torch.isfinite(g).all() for g in grads)


def test_bf16_autocast_is_close_to_float32():
    """Under bf16 autocast the products run in bf16 and layer norm's statistics in fp32."""
    critic = paper_critic("layer").float()
    real, fake = torch.rand(6, 1, 28, 28) * 2 - 1, torch.rand(6, 1, 28, 28) * 2 - 1
    eps = torch.rand(6, 1, 1, 1)
    want = reference.gradient_penalty(critic, real, fake, eps)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = losses.gradient_penalty(critic, real, fake.bfloat16(), eps)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=5e-2, atol=1e-3)


def test_compiles_in_one_graph_with_its_backward():
    """fullgraph: no graph break, and AOT autograd differentiates the penalty like eager autograd."""
    critic = odd_critic().float()
    real, fake, eps = torch.randn(5, 3, 10, 10), torch.randn(5, 3, 10, 10), torch.rand(5, 1, 1, 1)

    def weight_grads(gp):
        return torch.autograd.grad(gp, [*critic.parameters()], allow_unused=True, materialize_grads=True)

    compiled = torch.compile(losses.gradient_penalty, fullgraph=True, backend="aot_eager")
    got = weight_grads(compiled(critic, real, fake, eps))
    for g, w in zip(got, weight_grads(losses.gradient_penalty(critic, real, fake, eps))):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layers, match", [
    ([nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 1)], "layer 1 is BatchNorm2d"),
    ([nn.Conv2d(1, 2, 3, padding="same"), nn.Flatten(), nn.Linear(2, 1)], "zero padding given as numbers"),
    ([nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.Flatten(), nn.Linear(2, 1)], "padding_mode='reflect'"),
    ([nn.Flatten(), nn.Linear(4, 2)], r"nn.Linear\(..., 1\)"),
    ([nn.Flatten(), nn.ReLU()], r"nn.Linear\(..., 1\)"),
    ([], r"nn.Linear\(..., 1\)"),
])
def test_unsupported_critics_are_refused(layers, match):
    x = torch.randn(2, 1, 4, 4)
    with pytest.raises(TypeError, match=match):
        losses.gradient_penalty(layers, x, x, torch.rand(2, 1, 1, 1))


def test_mismatched_batches_are_refused():
    from fastinfo.losses.penalty import critic_features_and_input_grad

    critic = [nn.Flatten(), nn.Linear(4, 1)]
    with pytest.raises(ValueError, match="one shape"):
        losses.gradient_penalty(critic, torch.randn(2, 4), torch.randn(3, 4), torch.rand(2, 1))
    with pytest.raises(ValueError, match=r"grad_from must be in \[0, 3\)"):
        critic_features_and_input_grad(critic, torch.randn(3, 4), grad_from=3)


def test_a_score_layer_of_another_width_is_refused():
    """The score layer's forward is not needed for the penalty: without the check the mismatch
    surfaced as a reshape error of the gradient, several layers down."""
    x = torch.randn(4, 1, 28, 28)
    with pytest.raises(ValueError, match=r"the critic's last layer takes 700 features, and the layers before it "
                                         r"give \(784,\) a sample"):
        losses.gradient_penalty([nn.Flatten(), nn.Linear(700, 1)], x, x, torch.rand(4, 1, 1, 1))


@pytest.mark.parametrize("eps", [torch.rand(4), torch.rand(4, 1, 4, 1), torch.rand(1, 1, 1, 1), 0.5])
def test_eps_needs_one_weight_a_sample(eps):
    """A [B] eps would broadcast along the images' last dimension, here as long as the batch."""
    layers = [nn.Flatten(), nn.Linear(16, 1)]
    x = torch.randn(4, 1, 4, 4)
    with pytest.raises(ValueError, match=r"eps must hold one weight a sample, shaped \(4, 1, 1, 1\)"):
        losses.gradient_penalty(layers, x, x, eps)
