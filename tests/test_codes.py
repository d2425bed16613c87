import math

import pytest
import torch

from fastinfo.codes import LatentSpec


def test_sample_shapes_ranges_and_uniform_categories():
    spec = LatentSpec(noise_dim=5, cat_sizes=(10, 3), n_cont=2)
    gen = torch.Generator().manual_seed(torch.seed() % 2**31)
    z, cat, cont = spec.sample(30000, generator=gen)
    assert z.shape == (30000, 5) and cat.shape == (30000, 2) and cont.shape == (30000, 2)
    assert cat.dtype == torch.int64
    assert cat[:, 0].min() == 0 and cat[:, 0].max() == 9 and cat[:, 1].max() == 2
    assert cont.min() >= -1 and cont.max() <= 1
    freq = torch.bincount(cat[:, 0], minlength=10).float() / 30000
    assert (freq - 0.1).abs().max() < 0.015
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05


def test_uniform_noise_prior():
    z, _, _ = LatentSpec(noise_prior="uniform").sample(5000)
    assert z.min() >= -1 and z.max() <= 1 and abs(z.std() - 1 / math.sqrt(3)) < 0.02


@pytest.mark.parametrize("prior", ["normal", "uniform"])
def test_noise_scale_scales_z_alone(prior):
    gen = lambda: torch.Generator().manual_seed(3)
    base = LatentSpec(noise_prior=prior).sample(64, generator=gen())
    scaled = LatentSpec(noise_prior=prior, noise_scale=0.25).sample(64, generator=gen())
    torch.testing.assert_close(scaled[0], base[0] * 0.25)
    assert torch.equal(scaled[1], base[1]) and torch.equal(scaled[2], base[2])


def test_entropy():
    spec = LatentSpec(cat_sizes=(10, 4), n_cont=2)
    torch.testing.assert_close(
        spec.entropy(), torch.tensor([math.log(10), math.log(4), math.log(2), math.log(2)])
    )
    assert spec.code_names == ["c1", "c2", "c3", "c4"]


def test_g_input_layout():
    spec = LatentSpec(noise_dim=3, cat_sizes=(4, 2), n_cont=1)
    z = torch.arange(6.0).view(2, 3)
    cat = torch.tensor([[1, 0], [3, 1]])
    cont = torch.tensor([[0.5], [-0.25]])
    x = spec.g_input(z, cat, cont)
    assert spec.input_dim == 3 + 4 + 2 + 1 == x.shape[1]
    torch.testing.assert_close(x[0], torch.tensor([0, 1, 2, 0, 1, 0, 0, 1, 0, 0.5]))
    torch.testing.assert_close(x[1], torch.tensor([3, 4, 5, 0, 0, 0, 1, 0, 1, -0.25]))


def test_traversal_sweeps_one_code_only():
    spec = LatentSpec(noise_dim=4, cat_sizes=(10,), n_cont=2)
    z, cat, cont, n = spec.traversal(0, n_rows=3)
    assert n == 10 and z.shape == (30, 4)
    assert cat[:, 0].tolist() == list(range(10)) * 3
    assert torch.equal(z[0], z[9]) and not torch.equal(z[0], z[10])
    z, cat, cont, n = spec.traversal(2, n_rows=2, n_values=5)
    torch.testing.assert_close(cont[:5, 1], torch.linspace(-2, 2, 5))
    assert torch.equal(cont[:5, 0], cont[0, 0].expand(5)) and torch.equal(cat[:5], cat[0].expand(5, 1))


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        (dict(cat_sizes=(1,)), ">= 2 categories"),
        (dict(noise_prior="cauchy"), "noise_prior must be one of"),
        (dict(noise_dim=-1), "must be >= 0"),
        (dict(noise_scale=0.0), "noise_scale must be positive"),
        (dict(noise_dim=0, cat_sizes=(), n_cont=0), "latent space is empty"),
    ],
)
def test_bad_specs(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        LatentSpec(**kwargs)
    with pytest.raises(ValueError, match="code index"):
        LatentSpec().traversal(3, n_rows=1)
