"""The MINE estimator: moving average as a buffer, fresh permutations, and known MI."""

import json
import math

import pytest
import torch

from fastinfo import losses, mine_check
from fastinfo.mine import MINE, ConcatCritic, SeparableCritic


def test_log_ema_is_a_buffer_that_starts_nan_and_checkpoints():
    m = MINE(ConcatCritic(2, 2, hidden=16))
    assert "log_ema" in m.state_dict() and torch.isnan(m.log_ema)
    x, y = torch.randn(32, 2), torch.randn(32, 2)
    m(x, y)
    first = m.log_ema.clone()
    assert torch.isfinite(first)
    m(x, y)
    assert torch.isfinite(m.log_ema)
    m2 = MINE(ConcatCritic(2, 2, hidden=16))
    m2.load_state_dict(m.state_dict())
    assert torch.equal(m2.log_ema, m.log_ema)
    frozen = m.log_ema.clone()
    m(x, y, update_ema=False)
    m.eval()
    m(x, y)
    assert torch.equal(m.log_ema, frozen)


def test_marginals_use_a_fresh_permutation_each_call():
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, x, y):
            seen.append(y.clone())
            return y.sum(1)

    m = MINE(Recorder(), "f")
    y = torch.arange(64.0).view(64, 1)
    gen = torch.Generator().manual_seed(0)
    m(y, y, generator=gen)
    m(y, y, generator=gen)
    (joint1, marg1), (joint2, marg2) = (pairs.split(64) for pairs in seen)  # one critic call each
    assert torch.equal(joint1, y) and sorted(marg1.view(-1).tolist()) == list(range(64))
    assert not torch.equal(marg1, marg2)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_one_critic_call_unless_batch_norm_would_mix_joint_and_marginal(batch_norm):
    """Without batch norm the joint and marginal pairs share one call and give two calls' bound;
    with it, each gets its own call and its own statistics."""
    torch.manual_seed(0)
    critic = ConcatCritic(3, 2)
    if batch_norm:
        critic.net.insert(1, torch.nn.BatchNorm1d(256))
    calls = []
    critic.register_forward_hook(lambda *_: calls.append(1))
    m = MINE(critic, "dv", bias_correction=False)
    x, y = torch.randn(32, 3), torch.randn(32, 2)
    bound = m(x, y, generator=torch.Generator().manual_seed(1))
    perm = torch.randperm(32, generator=torch.Generator().manual_seed(1))
    calls_made = len(calls)
    want, _ = losses.reference.mine_dv_bound(critic(x, y), critic(x, y[perm]), None, 0.01)
    assert calls_made == (2 if batch_norm else 1)
    torch.testing.assert_close(bound, want)


def test_a_given_pairing_is_the_one_drawn_otherwise_and_compiles():
    """perm = the permutation the generator would draw gives the same bound, eager and under
    torch.compile (fullgraph), where no generator can be drawn from."""
    torch.manual_seed(0)
    m = MINE(ConcatCritic(3, 2, hidden=16), "dv")
    x, y = torch.randn(16, 3), torch.randn(16, 2)
    drawn = m(x, y, generator=torch.Generator().manual_seed(4), update_ema=False)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(m(x, y, perm=perm, update_ema=False), drawn)
    compiled = torch.compile(lambda x, y, p: m(x, y, perm=p), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, y, perm), drawn)
    assert torch.isfinite(m.log_ema)  # the compiled call updated the average
    with pytest.raises(ValueError, match=r"shape \(16,\); got torch.int64, shape \(8,\)"):
        m(x, y, perm=perm[:8])
    with pytest.raises(ValueError, match=r"int64 indices, shape \(16,\); got torch.float32"):
        m(x, y, perm=perm.float())  # was an IndexError from the indexing


def test_construction_errors():
    with pytest.raises(ValueError, match="variant must be one of"):
        MINE(ConcatCritic(1, 1), "nce")
    with pytest.raises(ValueError, match="separable critic"):
        MINE(ConcatCritic(1, 1), "pairwise")
    with pytest.raises(ValueError, match=r"ema_rate must be a finite number in \[0.0, 1.0\], got -0.1"):
        MINE(ConcatCritic(1, 1), ema_rate=-0.1)
    fx, gy = SeparableCritic(3, 2, embed_dim=4, hidden=8).embed(torch.randn(5, 3), torch.randn(5, 2))
    assert fx.shape == gy.shape == (5, 4)
    for variant, critic in (("dv", ConcatCritic(3, 2, hidden=8)), ("pairwise", SeparableCritic(3, 2, 4, 8))):
        for bx, by in ((8, 7), (1, 1)):
            with pytest.raises(ValueError, match=f"the same batch of at least 2 samples, got {bx} and {by}"):
                MINE(critic, variant)(torch.randn(bx, 3), torch.randn(by, 2))


@pytest.mark.parametrize("estimator", ["dv-ema", "pairwise"])
def test_estimate_of_known_gaussian_mi(estimator, monkeypatch):
    # d = 1, rho = 0.8: I = -ln(1 - 0.64) / 2 = 0.511 nats; stated tolerance 15%. The estimator's
    # statistics on the PyTorch reference: the kernels are held to it in tests/kernels, and 400
    # steps of them in Triton's CPU interpreter take minutes
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    truth = mine_check.true_mi(1, 0.8)
    assert truth == pytest.approx(0.5108, abs=1e-4)
    est = mine_check.estimate(1, 0.8, estimator, steps=400, batch=128, lr=3e-3, hidden=64)
    assert abs(est - truth) < 0.15 * truth, f"{estimator}: {est:.3f} vs {truth:.3f}"


def test_mine_check_cli(tmp_path):
    assert mine_check.main(["--dims", "1", "--rhos", "0.5", "--estimators", "f,dv", "--steps", "20",
                            "--batch-size", "64", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "mine_check.json").read_text())["rows"]
    assert rows[0]["true"] == pytest.approx(-0.5 * math.log(0.75)) and {"f", "dv"} <= set(rows[0])
    assert (tmp_path / "mine_check.png").is_file() and "| 1 | 0.5 |" in (tmp_path / "mine_check.md").read_text()


def test_mine_check_keeps_its_estimates_through_an_interruption(tmp_path, monkeypatch, capsys):
    """Each estimate is saved when made: after Ctrl-C, the same command makes only the missing
    ones, as does a command that asks for more; other --steps start again."""
    made, interrupt = [], [True]

    def fake_estimate(d, rho, est, steps, batch, device):
        if len(made) == 3 and interrupt and interrupt.pop():
            raise KeyboardInterrupt
        made.append((d, rho, est))
        return d + rho + len(est)

    monkeypatch.setattr(mine_check, "estimate", fake_estimate)
    args = ["--dims", "1,2", "--rhos", "0.5", "--estimators", "f,dv", "--steps", "5", "--out", str(tmp_path)]
    assert mine_check.main(args) == 130
    assert "interrupted: the estimates made are kept in" in capsys.readouterr().err
    assert not (tmp_path / "mine_check.md").exists()
    made.clear()
    assert mine_check.main(args) == 0
    assert made == [(2, 0.5, "dv")]
    assert "keeping 3 of the 4 estimates" in capsys.readouterr().err
    assert "| 2 | 0.5 | 0.288 | 3.500 (+1117%) | 4.500 (+1464%) |" in (tmp_path / "mine_check.md").read_text()
    made.clear()
    assert mine_check.main([*args, "--dims", "1,3"]) == 0
    assert made == [(3, 0.5, "f"), (3, 0.5, "dv")]
    saved = json.loads((tmp_path / "mine_check.json").read_text())
    assert [(r["d"], r["rho"]) for r in saved["rows"]] == [(1, 0.5), (2, 0.5), (3, 0.5)]
    made.clear()
    assert mine_check.main([*args, "--steps", "6"]) == 0
    assert len(made) == 4 and "it is replaced" in capsys.readouterr().err


def test_mine_check_refuses_a_device_or_folder_it_cannot_use(tmp_path, capsys):
    assert mine_check.main(["--device", "tpu", "--out", str(tmp_path / "a")]) == 2
    assert "unknown --device 'tpu'; accepted: auto, cpu, cuda, cuda:N" in capsys.readouterr().err
    (tmp_path / "b").write_text("")
    assert mine_check.main(["--out", str(tmp_path / "b")]) == 2
    assert f"cannot make the folder --out {tmp_path / 'b'}: a file has its name" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
