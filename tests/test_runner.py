"""The training step's runners: eager, and the whole step in a CUDA graph. Both must train the
same model the same way; on the CPU the graphed runner's warm-up path (static buffers, metric
table) is checked against the eager one, on a GPU the captured graph itself."""

import copy
import json
import math
import traceback
from pathlib import Path

import pytest
import torch

from fastinfo import graphs, losses, runner
from fastinfo.config import ConfigError, make_config
from tests.helpers import STEP_SETTINGS, assert_same_functions, assert_same_state, build, run

pytestmark = pytest.mark.usefixtures("synthetic_mnist")

class RecordedCall:
    """A stand-in for a captured CUDA graph on the CPU: replay() calls the function again."""

    def __init__(self, fn):
        self.replay = fn


@pytest.mark.parametrize("model", ["infogan", "infowgan", "minegan"])
def test_graphed_runner_bookkeeping_trains_like_the_eager_runner(model, monkeypatch):
    """Static buffers, warm-up, capture after it, replays and the metric ring give the eager
    runner's training step for step, bit for bit (the capture replaced by a recorded call)."""
    captured = []

    def capture(fn, warmup=1, generators=()):
        captured.append(generators)
        return RecordedCall(fn), None

    monkeypatch.setattr(runner.graphs, "capture", capture)
    eager_model, eager = build(model, torch.device("cpu"), runner.EagerStep)
    graphed_model, graphed = build(
        model, torch.device("cpu"), lambda m, ld, g: runner.GraphedStep(m, ld, g, metric_rows=3, warmup=2)
    )
    steps = 5
    for i in range(steps):
        want, got = eager(i), graphed(i)
        assert list(got) == list(want)
        for k in want:
            torch.testing.assert_close(got[k], want[k].float(), rtol=0, atol=0, msg=f"step {i}: {k}")
        assert len(graphed.graphs) == (i >= 2)  # captured at the third step, after two warm-up steps
    assert_same_state(eager_model, graphed_model)
    assert captured == [[graphed.gen]]
    assert graphed.host_row == graphed.row.item() == steps % 3


# ATen calls that make the host wait for the device on a GPU
SYNCING = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "equal"}
# Reads that happen on CPU tensors only: one_hot's and info_nll's range checks, and the step
# count of a CPU optimiser (on a GPU they are fused or capturable and count on the device).
CPU_ONLY_CHECKS = {"g_input", "_validate"}


def cpu_only(frames) -> bool:
    return any(f.name in CPU_ONLY_CHECKS or "/torch/optim/" in f.filename for f in frames)


@pytest.mark.parametrize("model", [m for m in STEP_SETTINGS if not STEP_SETTINGS[m].get("wgan_schedule")])
def test_step_never_waits_for_the_device(model, monkeypatch):
    """No .item(), bool(), nonzero() and the like in a training step: each would be a host sync on
    a GPU, and a CUDA graph could not capture the step."""
    from fastinfo.kernels import entry
    from torch.utils._python_dispatch import TorchDispatchMode

    # the fused ops' own functions run under the mode, as they run in an eager step (a dispatch
    # mode would otherwise see each op whole), so that a sync inside them shows too
    monkeypatch.setattr(entry, "op_must_be_seen", torch.compiler.is_compiling)

    class Syncs(TorchDispatchMode):
        found = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ in SYNCING:
                frames = traceback.extract_stack()
                if not cpu_only(frames):
                    Syncs.found.append(f"{func} from " + " < ".join(
                        f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames[-8:-1])))
            return func(*args, **(kwargs or {}))

    _, step = build(model, torch.device("cpu"), runner.EagerStep)
    step(0)
    with Syncs():
        step(1)
    assert not Syncs.found, Syncs.found


@pytest.mark.parametrize("model", ["infogan", "infowgan", "infowgan-gp", "minegan"])
def test_joint_d_forward_is_exact(model):
    """One D forward over real and fake (--joint-d) trains like two, also with batch norm (infogan,
    infowgan, minegan), which normalises each half with its own statistics; infowgan-gp's forward
    also takes the penalty's points, against three forwards."""
    separate, run_separate = build(model, torch.device("cpu"), runner.EagerStep, joint_d=False)
    joint, run_joint = build(model, torch.device("cpu"), runner.EagerStep, joint_d=True)
    # step 0 on the same networks, step 1 on the ones step 0 trained. Later steps drift apart by
    # ~1e-3: the convolutions round differently at batch 16 than at 8, and Adam turns a rounding
    # difference in a near-zero gradient into a step of about lr. Step 1 already shows some of it,
    # by how much depends on the CPU's convolution algorithms and the torch release (on one 2-core
    # machine up to 7e-5 with torch 2.14 and 3e-4 with 2.11, ~1e-2 a step later): step 1 takes 1e-3
    for i, tol in enumerate((1e-5, 1e-3)):
        want, got = run_separate(i), run_joint(i)
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=tol, atol=tol, msg=f"step {i}: {k}")


def test_joint_d_forward_is_exact_with_q_on_the_real_batch_too():
    """--lambda-real: Q on the real rows as well, each half through Q's batch norm on its own."""
    separate, run_separate = build("infogan", torch.device("cpu"), runner.EagerStep, joint_d=False, lambda_real=1.0)
    joint, run_joint = build("infogan", torch.device("cpu"), runner.EagerStep, joint_d=True, lambda_real=1.0)
    for i, tol in enumerate((1e-5, 1e-3)):  # as test_joint_d_forward_is_exact
        want, got = run_separate(i), run_joint(i)
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=tol, atol=tol, msg=f"step {i}: {k}")


@pytest.mark.parametrize("joint_d", [True, False])
def test_real_information_term_adds_minus_lambda_times_q_information_on_the_real_batch(joint_d):
    """D's loss with --lambda-real 0.7 is the loss without it minus 0.7 * I(real; c1) under Q: Q's
    outputs on the fake rows (and so the L_I term) do not change, and the term's gradient reaches
    D's body and Q's head."""
    plain, _ = build("infogan", torch.device("cpu"), runner.EagerStep, joint_d=joint_d)
    with_real, _ = build("infogan", torch.device("cpu"), runner.EagerStep, joint_d=joint_d, lambda_real=0.7)
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(8, 1, 28, 28, generator=gen) * 2 - 1
    z, cat, cont = plain.sample_latent(8, gen)
    fake = plain.generate(z, cat, cont)
    q_real = copy.deepcopy(plain.D)(real)[1][0]  # train mode: the batch's own statistics, as in the step
    base_loss, _ = plain._gan_d_loss(real, fake, cat, cont)
    loss, _ = with_real._gan_d_loss(real, fake, cat, cont)
    information = losses.categorical_information(q_real, (10,))
    assert 0 < information.item() < math.log(10)
    torch.testing.assert_close(loss, base_loss - 0.7 * information.sum(), rtol=1e-5, atol=1e-5)
    loss.backward()
    assert with_real.D.q_head.net[0].weight.grad.abs().sum() > 0 and with_real.D.body[0].weight.grad.abs().sum() > 0


def test_split_forward_normalises_each_half_on_its_own():
    """D over [real; fake] with split gives the outputs and the running statistics of D(real)
    then D(fake)."""
    m, _ = build("infogan", torch.device("cpu"), runner.EagerStep)
    real, fake = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28) * 2 - 1
    D = copy.deepcopy(m.D)
    d_real, _ = m.D(real, with_q=False)
    d_fake, q = m.D(fake)
    d, q_joint = D(torch.cat([real, fake]), split=8)
    torch.testing.assert_close(d, torch.cat([d_real, d_fake]), rtol=1e-5, atol=1e-5)
    for a, b in zip(q_joint, q):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for (name, a), b in zip(D.named_buffers(), m.D.buffers()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_joint_d_forward_gives_q_only_the_fake_rows():
    m, _ = build("infogan", torch.device("cpu"), runner.EagerStep, joint_d=True)
    real, fake = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28)
    d_real, d_fake, (logits, mean, log_std) = m.d_real_fake(real, fake, with_q=True)
    assert d_real.shape == d_fake.shape == (8,) and logits.shape == (8, 10) and mean.shape == (8, 2)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # the interpreter's, meant here
@pytest.mark.parametrize("model", [m for m in STEP_SETTINGS if not STEP_SETTINGS[m].get("wgan_schedule")])
def test_fp16_loss_scaling_trains_and_skips_overflowing_steps(model):
    """--amp fp16: one loss scaler for every optimiser, an iteration of it per optimiser step (a
    critic steps n_critic times per generator step). Steps train; a step whose fp16 gradients
    overflow leaves every parameter as it was, clipping included, and lowers the scale."""
    m, step = build(model, torch.device("cpu"), runner.EagerStep, amp="fp16")

    def params():  # each optimiser's parameters, as one flat tensor
        return {n: torch.cat([p.detach().flatten() for g in opt.param_groups for p in g["params"]])
                for n, opt in m.optimizers.items()}

    start = params()
    for i in range(2):
        assert all(torch.isfinite(v).all() for v in step(i).values())
    trained = params()
    assert all(not torch.equal(start[n], trained[n]) for n in start)
    m.scaler.update(2.0**100)  # the scaled losses' gradients overflow in fp16
    step(2)
    assert all(torch.equal(trained[n], p) for n, p in params().items())
    assert m.scaler.get_scale() < 2.0**100


def test_cuda_graphs_option_errors():
    with pytest.raises(ConfigError, match="not fp16"):
        make_config(dict(cuda_graphs=True, amp="fp16"))
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        make_config(dict(cuda_graphs=True, device="cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_graphs_without_a_gpu_exits_2(tmp_path, capsys):
    assert run(tmp_path, "--steps", 2, "--cuda-graphs") == 2
    assert "--cuda-graphs needs a CUDA GPU" in capsys.readouterr().err


@pytest.mark.cuda
@pytest.mark.parametrize("model", list(STEP_SETTINGS))
def test_graphed_step_trains_like_the_eager_step(model, monkeypatch):
    """fp32, same seeds: 3 warm-up steps, a capture, then replays (with --wgan-schedule, two
    graphs: 100 critic steps and n_critic) give the parameters and metrics of eager steps."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    cuda = torch.device("cuda")
    # both models use capturable optimisers, so that only the graph differs
    eager_model, eager = build(model, cuda, runner.EagerStep, cuda_graphs=True)
    graphed_model, graphed = build(model, cuda, lambda m, ld, g: runner.GraphedStep(m, ld, g, metric_rows=8),
                                   cuda_graphs=True)
    for i in range(7):
        want, got = eager(i), graphed(i)
        for k in want:
            torch.testing.assert_close(got[k], want[k].float(), rtol=1e-3, atol=1e-4,
                                       msg=lambda m, i=i, k=k: f"step {i}, {k}: {m}")
    schedule = STEP_SETTINGS[model].get("wgan_schedule")
    assert set(graphed.graphs) == ({100} if schedule else {graphed_model.batches_per_step(0)})
    assert_same_functions(eager_model, graphed_model, rtol=1e-2, atol=2e-3)


@pytest.mark.cuda
def test_cuda_graphs_run_logs_like_an_eager_run(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    common = ("--steps", 9, "--log-every", 4, "--ckpt-every", 5, "--no-eval-at-end", "--device", "cuda")
    assert run(tmp_path / "eager", *common) == 0
    assert run(tmp_path / "graphed", *common, "--cuda-graphs") == 0

    def logged(name):
        rows = [json.loads(r) for r in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "step_time"} for r in rows]

    eager, graphed = logged("eager"), logged("graphed")
    assert [r["step"] for r in graphed] == list(range(1, 10))
    for i, (a, b) in enumerate(zip(eager, graphed)):
        assert a.keys() == b.keys() and all(math.isfinite(v) for v in b.values())
        # the values of the first two steps (before and after one update); past them the two
        # runs' optimisers (capturable or not) round apart and Adam amplifies it (see the
        # --joint-d test)
        if i < 2:
            assert all(abs(a[k] - b[k]) <= 1e-4 * (1 + abs(a[k])) for k in a), (a, b)


@pytest.mark.cuda
@pytest.mark.parametrize("model, amp", [("infogan", "none"), ("infogan", "bf16"), ("infowgan-gp", "none")])
def test_compiled_step_on_cuda_matches_eager(model, amp):
    """--compile on a GPU at the paper's batch size: the first step's losses are the eager step's,
    and training goes on. In fp32, inductor's channels-last layout for G's transposed
    convolutions made G's compiled backward fail (pytorch/pytorch#171622); infowgan-gp's compiled
    critic loss has such a convolution too, in the penalty's gradient."""
    cuda = torch.device("cuda")
    _, eager = build(model, cuda, runner.EagerStep, B=128, amp=amp)
    _, compiled = build(model, cuda, runner.EagerStep, B=128, amp=amp, compile=True)
    want, got = eager(0), compiled(0)
    tol = dict(rtol=1e-2, atol=1e-3) if amp == "none" else dict(rtol=5e-2, atol=2e-2)
    for k in want:
        torch.testing.assert_close(got[k].float(), want[k].float(), **tol, msg=lambda m, k=k: f"{k}: {m}")
    for i in range(1, 3):
        assert all(torch.isfinite(v) for v in compiled(i).values())


@pytest.mark.slow
@pytest.mark.parametrize("model, size", [("infogan", 0), ("infowgan-gp", 0), ("minegan", 0), ("infogan", 64)])
def test_compiled_networks_train_like_eager_ones(model, size):
    """--compile (inductor on the CPU here) with the fused ops inside gives the eager step's
    losses: exactly up to rounding before any update; after one, inductor's other summation
    order has reached the parameters through Adam's near-zero gradients at the lr scale (up to
    1.4% in minegan's G loss with the tuned preset's noise).
    infowgan-gp: the gradient penalty, compiled with the critic's loss;
    minegan: two backward passes through G in one step; infogan at 64: the 64x64 networks."""
    _, eager = build(model, torch.device("cpu"), runner.EagerStep, image_size=size)
    _, compiled = build(model, torch.device("cpu"), runner.EagerStep, compile=True, image_size=size)
    for i, tol in enumerate([dict(rtol=1e-4, atol=1e-5), dict(rtol=2e-2, atol=2e-3)]):
        want, got = eager(i), compiled(i)
        for k in want:
            torch.testing.assert_close(got[k], want[k], **tol, msg=lambda m, i=i, k=k: f"step {i}, {k}: {m}")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error of a machine without a GPU")
def test_capture_without_a_gpu_says_so():
    with pytest.raises(RuntimeError, match="records a CUDA graph: it needs a CUDA GPU, and none is available"):
        graphs.capture(lambda: torch.ones(2))
