"""One run over several processes on the CPU (gloo): the gradient average, ranks that stay
identical, and torchrun runs that write, stop and resume like a run of one process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fastinfo import checkpoint, data, distributed, runner
from fastinfo.config import make_config
from fastinfo.runs import build_model

pytestmark = pytest.mark.slow  # each starts processes that import torch


def _in_group(rank: int, folder: str, work) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    try:
        torch.save(work(rank), f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def on_two_ranks(tmp_path, work) -> list:
    """work(rank)'s result on each of two processes joined in a gloo group."""
    mp.spawn(_in_group, args=(str(tmp_path), work), nprocs=2)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]


def average_of_rank_numbers(rank: int) -> list[torch.Tensor]:
    params = [torch.nn.Parameter(torch.zeros(2, 3)), torch.nn.Parameter(torch.zeros(4)),
              torch.nn.Parameter(torch.zeros(1))]
    params[0].grad = torch.full((2, 3), float(rank + 1))
    params[1].grad = torch.arange(4.0) * (rank + 1)
    distributed.average_gradients(params)  # params[2] has no gradient: left out
    return [params[0].grad, params[1].grad, params[2].grad]


def test_gradients_are_averaged_over_the_ranks(tmp_path):
    for grads in on_two_ranks(tmp_path, average_of_rank_numbers):
        assert torch.equal(grads[0], torch.full((2, 3), 1.5))
        assert torch.equal(grads[1], torch.arange(4.0) * 1.5) and grads[2] is None


def three_sharded_steps(rank: int) -> dict:
    """An InfoGAN trained 3 steps on rank's share of batches of 8, with the rank's own codes."""
    cfg = make_config({"model": "infogan", "batch_size": 8})
    torch.manual_seed(0)
    model = build_model(cfg, torch.device("cpu"))
    start = {k: v.clone() for k, v in model.G.state_dict().items()}
    images = torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    loader = data.DeviceLoader(images, 8, "cpu", torch.Generator().manual_seed(1), shard=(rank, 2))
    seen = loader.perm[rank * 4 : rank * 4 + 4].clone()
    step = runner.EagerStep(model, loader, torch.Generator().manual_seed(distributed.rank_seed(0, rank)))
    for i in range(3):
        step(i)
    params = [p.detach().clone() for net in model.networks.values() for p in net.parameters()]
    return {"params": params, "start": start, "G": model.G.state_dict(), "first_share": seen}


def test_ranks_train_on_their_shares_and_stay_identical(tmp_path):
    first, second = on_two_ranks(tmp_path, three_sharded_steps)
    assert all(torch.equal(a, b) for a, b in zip(first["params"], second["params"]))
    assert not torch.equal(first["G"]["net.0.weight"], first["start"]["net.0.weight"])  # they trained
    assert set(first["first_share"].tolist()).isdisjoint(second["first_share"].tolist())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_command(n: int, *args) -> tuple[list[str], dict]:
    """(command, environment) of fastinfo.train over n processes on the CPU, on random images
    (tests/distributed_train.py)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n),
               "--master-port", str(free_port()), "-m", "tests.distributed_train",
               "--no-progress", "--sample-every", "0", "--no-eval-at-end", "--log-every", "2", *map(str, args)]
    return command, {**os.environ, "OMP_NUM_THREADS": "1"}


ROOT = os.path.dirname(os.path.dirname(__file__))


def torchrun(n: int, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    command, env = torchrun_command(n, *args)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def test_a_torchrun_run_writes_once_and_resumes(tmp_path):
    run = tmp_path / "run"
    done = torchrun(2, "--out", run, "--steps", 4, "--batch-size", 8, "--ckpt-every", 2)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("training infogan") == 1  # rank 0 alone speaks
    assert "2 processes (rank 0 on cpu" in done.stderr and "batch 8 (4 a process)" in done.stderr
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    state = checkpoint.load(run / "checkpoint.pt")
    assert state["step"] == 4 and state["world_size"] == 2 and len(state["rng"]["ranks"]) == 2
    # each rank its own codes: rank 1's stream is not rank 0's
    assert not torch.equal(state["rng"]["ranks"][0]["sample"], state["rng"]["ranks"][1]["sample"])
    more = torchrun(2, "--resume", run, "--steps", 6)
    assert more.returncode == 0, more.stderr[-2000:]
    assert checkpoint.load(run / "checkpoint.pt")["step"] == 6 and "new seeds" not in more.stderr
    # on another number of processes the run goes on, with new random streams, and says so
    alone = torchrun(1, "--resume", run, "--steps", 8)
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert "was trained by 2 processes, not 1, its random streams (z and c) go on from new seeds" in alone.stderr


@pytest.mark.parametrize("args, msg", [
    (["--batch-size", 7], "error: --batch-size 7 (the global batch) does not split over 2 processes: give a "
                          "multiple of 2"),
    (["--sync-bn"], "error: --sync-bn needs GPUs (torch's SyncBatchNorm runs on CUDA devices): leave it out on CPUs"),
])
def test_settings_a_world_cannot_take_are_refused(tmp_path, args, msg):
    done = torchrun(2, "--out", tmp_path / "run", "--steps", 2, *args)
    assert done.returncode != 0 and msg in done.stderr


def test_synchronised_batch_norm_keeps_the_tensors_the_optimisers_hold():
    cfg = make_config({"model": "infogan"})
    model = build_model(cfg, torch.device("cpu"))
    held = {id(p) for opt in model.optimizers.values() for g in opt.param_groups for p in g["params"]}
    keys = {n: set(net.state_dict()) for n, net in model.networks.items()}
    distributed.synchronise_batch_norm(model.networks.values())
    norms = [m for net in model.networks.values() for m in net.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms)
    assert {id(p) for net in model.networks.values() for p in net.parameters()} <= held
    assert {n: set(net.state_dict()) for n, net in model.networks.items()} == keys  # checkpoints load alike


def test_a_signal_to_one_rank_stops_every_rank_with_a_checkpoint(tmp_path):
    run = tmp_path / "run"
    command, env = torchrun_command(2, "--out", run, "--steps", 100000, "--batch-size", 8)
    with subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as agent:
        deadline = time.monotonic() + 240
        while not (run / "metrics.jsonl").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = subprocess.run(["pgrep", "-P", str(agent.pid)], capture_output=True, text=True).stdout.split()
        assert len(workers) == 2
        os.kill(int(workers[1]), signal.SIGTERM)  # one worker alone, not the agent
        _, err = agent.communicate(timeout=240)
    # (pgrep lists the workers by pid, which is rank 0 first as torchrun starts them)
    assert "stopped by a signal to another process at step" in err or "stopped by signal 15 at step" in err
    step = checkpoint.load(run / "checkpoint.pt")["step"]
    assert step > 0 and step % 2 == 0  # a logged step, where the ranks meet
