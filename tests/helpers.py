"""What several test files use: tiny runs (with the synthetic_mnist fixture of conftest), and
models with their step runners built from fixed seeds, compared state by state."""

import copy

import torch

from fastinfo import checkpoint, data
from fastinfo.config import make_config
from fastinfo.runs import build_model
from fastinfo.train import main

# small, quick runs: the settings every test run shares
FAST = ["--batch-size", "8", "--log-every", "2", "--no-progress", "--sample-every", "0"]


def run(tmp_path, *args) -> int:
    """fastinfo.train's exit code for a FAST run into tmp_path with args."""
    return main([*FAST, "--out", str(tmp_path), *map(str, args)])


def after_start(err: str) -> str:
    """A command's stderr without the start line of each run it trained ("training ...")."""
    return "".join(line for line in err.splitlines(keepends=True) if not line.startswith("training "))


def weights(path):
    """The networks' weights in the checkpoint at path."""
    return checkpoint.load(path)["models"]


# each model's settings for a step test: two critic steps keep the WGANs' steps short
STEP_SETTINGS = {
    "infogan": {}, "gan": {}, "infowgan": {"n_critic": 2}, "infowgan-gp": {"n_critic": 2},
    "minegan": {}, "wgan": {"n_critic": 2, "wgan_schedule": True},
}


def build(model, device, steps_runner, B=8, **kw):
    """(model, runner) with fixed seeds, on random images at the config's image size: two calls
    give identical starting points; kw over the model's STEP_SETTINGS (a model without any: none)."""
    cfg = make_config(dict(model=model, batch_size=B, **{**STEP_SETTINGS.get(model, {}), **kw}))
    torch.manual_seed(0)
    m = build_model(cfg, device)
    side = data.image_size(cfg)
    images = torch.randint(0, 256, (max(64, B), side, side), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    loader = data.DeviceLoader(images, B, device, torch.Generator(device).manual_seed(2))
    return m, steps_runner(m, loader, torch.Generator(device).manual_seed(3))


def assert_same_state(a, b):
    """Bit-identical networks and optimiser states."""
    for net in ("G", "D"):
        for (name, x), y in zip(getattr(a, net).state_dict().items(), getattr(b, net).state_dict().values()):
            assert torch.equal(x, y), f"{net}.{name} differs"
    for name, opt in a.optimizers.items():
        for x, y in zip(opt.state_dict()["state"].values(), b.optimizers[name].state_dict()["state"].values()):
            assert all(torch.equal(x[k], y[k]) for k in x), f"optimiser {name} state differs"


def assert_same_functions(a, b, **tol):
    """G and D with Q give the same outputs on fixed inputs, in training mode (batch statistics).
    Parameters are not compared one by one: a bias right before a batch norm has a gradient that
    is zero up to rounding, which Adam turns into steps of about +-lr that change no output; for
    the same reason any rounding difference in a near-zero gradient shows at the lr scale."""
    device = next(a.G.parameters()).device
    gen = torch.Generator(device).manual_seed(5)
    g_in = torch.randn(16, a.spec.input_dim, device=device, generator=gen)
    x = torch.rand(16, 1, 28, 28, device=device, generator=gen) * 2 - 1
    outputs = []
    for m in (a, b):
        with torch.no_grad():  # copies, so that the batch statistics of these calls stay out of the models
            G, D = copy.deepcopy(m.G), copy.deepcopy(m.D)
            d, q = D(x, with_q=True)
            outputs.append([G(g_in), d, *(t for t in q if t is not None)])
    for want, got in zip(*outputs):
        torch.testing.assert_close(got, want, **tol)
