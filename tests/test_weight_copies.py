"""--weight-copies: the layers use bf16 copies of their weights that the optimisers write. A step
gives autocast's numbers: exactly with torch's optimiser steps, within rounding with the fused
kernels; checkpoints and everything outside a step see the fp32 parameters."""

import pytest
import torch
from torch import nn

from fastinfo import optim, runner
from fastinfo.config import ConfigError, make_config
from fastinfo.optim import Adam
from fastinfo.train import main
from fastinfo.weight_copies import WeightCopies
from tests.helpers import assert_same_functions, assert_same_state, build, run, weights

pytestmark = pytest.mark.usefixtures("synthetic_mnist")

# the models whose steps equal autocast's bit for bit; infowgan-gp's differs in bf16 rounding
EXACT = ["infogan", "gan", "infowgan", "wgan", "minegan"]


def layers():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3),
                         nn.LayerNorm(3))


def test_copies_of_the_convolutions_and_linear_layers_only():
    net = layers()
    copies = WeightCopies()
    copies.add(net, net)  # a network added twice is copied once
    assert [name for name, p in net.named_parameters() if p in copies.of] == ["0.weight", "0.bias", "3.weight",
                                                                              "3.bias"]
    for p, c in copies.of.items():
        assert c.dtype == torch.bfloat16 and torch.equal(c, p.bfloat16()) and c.requires_grad


def test_layers_hold_their_copies_only_inside():
    net = layers()
    copies = WeightCopies()
    copies.add(net)
    master = net[0].weight
    with pytest.raises(RuntimeError, match="inside"):
        with copies.in_layers():
            assert net[0].weight is copies.of[master] and net[1].weight.dtype == torch.float32
            raise RuntimeError("inside")
    assert net[0].weight is master and all(p.dtype == torch.float32 for p in net.parameters())
    with torch.no_grad():
        master.add_(1)
    copies.refresh()
    assert torch.equal(copies.of[master], master.bfloat16())


def test_fp16_copies_are_refused():
    with pytest.raises(ValueError, match="bf16"):
        WeightCopies(torch.float16)


def test_tied_weights_share_one_copy_and_get_both_gradients():
    torch.manual_seed(0)
    first, second = nn.Linear(4, 4), nn.Linear(4, 4)
    second.weight = first.weight
    net = nn.Sequential(first, nn.Tanh(), second)
    x = torch.randn(3, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        net(x).float().square().sum().backward()
    tied, want = first.weight, first.weight.grad.clone()
    tied.grad = None
    copies = WeightCopies()
    copies.add(net)
    assert len(copies.of) == 3  # the tied weight once, and the two biases
    with copies.in_layers(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert first.weight is second.weight is copies.of[tied]
        net(x).float().square().sum().backward()
    assert tied.grad is None
    # the two layers' gradients summed in bf16, where autocast sums them in fp32
    torch.testing.assert_close(copies.of[tied].grad.float(), want, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("fused", [False, True])
def test_a_gradient_of_the_parameter_adds_to_its_copys(fused):
    """A loss taken outside in_layers (on the fp32 parameter) and one inside (on the copy): the
    step applies the sum of both gradients."""
    net, twin = layers(), layers()
    copies = WeightCopies()
    copies.add(net)
    x = torch.randn(5, 1, 8, 8)
    opt = Adam(net.parameters(), lr=1e-2, copies=copies.of, fused=fused)
    want = torch.optim.Adam(twin.parameters(), lr=1e-2)
    with copies.in_layers(), torch.autocast("cpu", dtype=torch.bfloat16):
        net(x).float().square().mean().backward()
    net[3].weight.square().sum().backward()
    for p, t in zip(net.parameters(), twin.parameters()):
        copy = copies.of.get(p)
        t.grad = p.grad if copy is None else copy.grad.float() + (0 if p.grad is None else p.grad)
    opt.step()
    want.step()
    for p, t in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(p, t)


def test_the_copies_get_the_gradients_and_the_update():
    net = layers()
    copies = WeightCopies()
    copies.add(net)
    opt = Adam(net.parameters(), lr=1e-2, copies=copies.of, fused=True)
    before = net[3].weight.detach().clone()
    with copies.in_layers(), torch.autocast("cpu", dtype=torch.bfloat16):
        net(torch.randn(5, 1, 8, 8)).float().square().mean().backward()
    assert net[3].weight.grad is None and copies.of[net[3].weight].grad.dtype == torch.bfloat16
    assert net[1].weight.grad.dtype == torch.float32  # batch norm: no copy
    opt.step()
    assert not torch.equal(net[3].weight, before)
    assert all(torch.equal(c, p.bfloat16()) for p, c in copies.of.items())
    opt.zero_grad()
    assert all(c.grad is None for c in copies.of.values())


@pytest.mark.parametrize("model", ["infogan", "gan", "infowgan", "wgan", "infowgan-gp", "minegan"])
def test_a_step_on_copies_trains_as_autocast(model):
    """bf16, two steps. With torch's optimiser steps (the CPU's), every model's steps are
    autocast's bit for bit, but infowgan-gp's: its penalty starts its backward to the input from
    the score layer's bf16 copy, where autocast's starts from the fp32 weight. WGAN's schedule
    (100 critic steps a generator step at first) is left out: it adds minutes of bf16 backward
    on a CPU and nothing the copies do differently."""
    cpu = torch.device("cpu")
    settings = dict(amp="bf16", **({"wgan_schedule": False} if model == "wgan" else {}))
    autocast_model, autocast = build(model, cpu, runner.EagerStep, **settings)
    copies_model, copies = build(model, cpu, runner.EagerStep, weight_copies=True, **settings)
    for i in range(2):
        want, got = autocast(i), copies(i)
        if model not in EXACT:
            for k in want:
                torch.testing.assert_close(got[k], want[k], rtol=5e-2, atol=5e-2, msg=lambda m, k=k: f"{k}: {m}")
    if model in EXACT:
        assert all(torch.equal(got[k], want[k]) for k in want)
        assert_same_state(autocast_model, copies_model)
    else:
        assert_same_functions(autocast_model, copies_model, rtol=0.1, atol=0.1)
    assert all(torch.equal(c, p.bfloat16()) for p, c in copies_model.copies.of.items())


def fused_optimizers(model) -> None:
    """The model's optimisers on the fused kernels (on the CPU under the interpreter)."""
    for name, opt in model.optimizers.items():
        if isinstance(opt, Adam):
            opt.kernel_fused = True
        elif isinstance(opt, torch.optim.Adam):  # torch's: the same update and state, on the kernel
            group = opt.param_groups[0]
            model.optimizers[name] = Adam(group["params"], lr=group["lr"], betas=group["betas"], fused=True)
        else:
            opt.fused = True


@pytest.mark.parametrize("model", ["infogan", "infowgan"])
def test_the_fused_steps_on_copies_train_as_autocast(model, monkeypatch):
    """The fused Adam and RMSprop steps, writing the copies, against the same kernels' steps
    under autocast: bit for bit. (Against torch's steps they agree to an fp32 rounding,
    tests/kernels; in bf16 that moves a few copies to the next bf16 value, and after a few
    steps two such runs part as any two bf16 runs do.)"""
    launches = []

    def counted(fn, copies_arg: int):  # records whether each launch writes copies
        return lambda *args: launches.append(bool(args[copies_arg])) or fn(*args)

    monkeypatch.setattr(optim._adam_kernel, "adam_", counted(optim._adam_kernel.adam_, 5))
    monkeypatch.setattr(optim._kernel, "rmsprop_", counted(optim._kernel.rmsprop_, 3))
    cpu = torch.device("cpu")
    autocast_model, autocast = build(model, cpu, runner.EagerStep, amp="bf16")
    copies_model, copies = build(model, cpu, runner.EagerStep, amp="bf16", weight_copies=True)
    for m in (autocast_model, copies_model):
        fused_optimizers(m)
    for i in range(2):
        want, got = autocast(i), copies(i)
        assert all(torch.equal(got[k], want[k]) for k in want), (i, want, got)
    assert_same_state(autocast_model, copies_model)
    assert True in launches and False in launches
    assert all(torch.equal(c, p.bfloat16()) for p, c in copies_model.copies.of.items())


def test_weight_copies_need_amp_bf16():
    for amp in ("none", "fp16"):
        with pytest.raises(ConfigError, match="--weight-copies keeps bf16 copies"):
            make_config(dict(amp=amp, weight_copies=True))


def test_a_run_on_copies_checkpoints_fp32_parameters_and_resumes_without_them(tmp_path):
    assert run(tmp_path, "--steps", 3, "--amp", "bf16", "--weight-copies", "--no-eval-at-end") == 0
    saved = weights(tmp_path / "checkpoint.pt")
    assert all(t.dtype == torch.float32 for net in saved.values() for t in net.values() if t.is_floating_point())
    assert main(["--resume", str(tmp_path), "--steps", "5", "--no-weight-copies", "--no-progress"]) == 0
    assert main(["--resume", str(tmp_path), "--steps", "7", "--weight-copies", "--no-progress"]) == 0


def test_loading_a_state_refreshes_the_copies():
    cpu = torch.device("cpu")
    a, steps = build("infogan", cpu, runner.EagerStep, amp="bf16")
    steps(0)
    b, _ = build("infogan", cpu, runner.EagerStep, amp="bf16", weight_copies=True)
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(c, p.bfloat16()) for p, c in b.copies.of.items())


@pytest.mark.slow
def test_compiled_step_on_copies_trains_as_compiled_autocast():
    """--compile with the layers on their copies (inductor on the CPU): the step of compiled
    autocast, before any update and after one."""
    cpu = torch.device("cpu")
    _, autocast = build("infogan", cpu, runner.EagerStep, amp="bf16", compile=True)
    copies_model, copies = build("infogan", cpu, runner.EagerStep, amp="bf16", weight_copies=True, compile=True)
    # After the first update the two differ by more than rounding: Adam's first step moves each
    # weight by +-lr whatever its gradient's size, so a gradient that the two compiled graphs round
    # to opposite sides of zero moves a weight by 2 lr (how many do depends on the CPU's vector
    # width). What must hold exactly is that the copies follow the update.
    for i, tol in enumerate([dict(rtol=1e-4, atol=1e-5), dict(rtol=5e-2, atol=3e-2)]):
        want, got = autocast(i), copies(i)
        for k in want:
            torch.testing.assert_close(got[k], want[k], **tol, msg=lambda m, i=i, k=k: f"step {i}, {k}: {m}")
        assert all(torch.equal(c, p.bfloat16()) for p, c in copies_model.copies.of.items())


@pytest.mark.cuda
@pytest.mark.parametrize("model, compile", [("infogan", False), ("gan", False), ("infowgan", False),
                                            ("infowgan-gp", False), ("minegan", False), ("infogan", True)])
def test_graphed_step_on_copies_trains_like_autocast(model, compile, monkeypatch):
    """On a GPU, the graphed step with --weight-copies against the eager autocast step, both with
    the fused optimiser kernels (same seeds): every step's metrics and the networks after five
    steps, within bf16 rounding. Compiled, inductor's kernels round otherwise than eager ones,
    which Adam's first steps amplify in bf16: the first step's metrics only."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    cuda = torch.device("cuda")
    autocast_model, autocast = build(model, cuda, runner.EagerStep, amp="bf16", cuda_graphs=True)
    fused_optimizers(autocast_model)
    copies_model, copies = build(model, cuda, lambda m, ld, g: runner.GraphedStep(m, ld, g, metric_rows=8),
                                 amp="bf16", cuda_graphs=True, compile=compile, weight_copies=True)
    for i in range(1 if compile else 5):
        want, got = autocast(i), copies(i)
        for k in want:
            torch.testing.assert_close(got[k], want[k].float(), rtol=2e-2, atol=2e-2,
                                       msg=lambda m, i=i, k=k: f"step {i}, {k}: {m}")
    if not compile:
        assert_same_functions(autocast_model, copies_model, rtol=5e-2, atol=2e-2)
    assert all(torch.equal(c, p.bfloat16()) for p, c in copies_model.copies.of.items())
