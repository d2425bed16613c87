"""One run over several processes (data parallel), started by torchrun:

    torchrun --nproc-per-node 4 -m fastinfo.train --model infogan --batch-size 512

Each process (rank) trains the same networks on its share of every batch: --batch-size is the
global batch, split evenly over the ranks. After each backward pass the gradients of the networks
about to step are averaged over the ranks (torch.distributed's all-reduce, one flat buffer per
optimiser step, as DistributedDataParallel averages its buckets), so every rank applies the same
update and the weights stay identical. A GAN step runs D several times before one backward (real
and fake, the Q head, G's pass through D), which DistributedDataParallel's module wrapper does
not allow without find_unused_parameters and its per-forward buffer broadcasts; averaging at the
optimiser step is the same arithmetic. Batch norm keeps per-rank statistics (as
DistributedDataParallel does without SyncBatchNorm), or with --sync-bn takes them over the
global batch.

Rank 0 alone writes the run folder; the others train beside it. The backend is NCCL on GPUs,
gloo on CPUs.
"""

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

# how long a rank waits for the others at a collective before it gives up: a rank that crashed
# stops the others within this
TIMEOUT = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> bool:
        """Whether this process writes the run folder (rank 0)."""
        return self.rank == 0


# a run of one process
SINGLE = World()

# rank r of seed s draws its codes from seed s + r * RANK_SEED_STRIDE: rank 0 those of a run of one
# process, and no rank of one seed those of a neighbouring seed
RANK_SEED_STRIDE = 1_000_003


def rank_seed(seed: int, rank: int) -> int:
    return (seed + rank * RANK_SEED_STRIDE) % 2**63


def from_environment() -> World:
    """The world torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK), or a
    world of one process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def start(world: World, device: torch.device) -> None:
    """Join the process group of a world of several processes (NCCL on GPUs, else gloo)."""
    if world.active and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT,
                                **({"device_id": device} if device.type == "cuda" else {}))


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def average_gradients(params: list[torch.Tensor]) -> None:
    """Replace each parameter's gradient by its mean over the ranks: one all-reduce of one flat
    buffer. Parameters without a gradient on this rank are left out (every rank computes the
    same ones)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(dist.get_world_size())
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """values averaged over the ranks (each rank passes the same shape)."""
    values = values.clone()
    dist.all_reduce(values)
    return values.div_(dist.get_world_size())


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether flag is true on any rank (a stop signal one rank received)."""
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    dist.barrier()


def gather(obj) -> list:
    """Every rank's obj, in rank order, on every rank."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def synchronise_batch_norm(networks) -> None:
    """Each network's batch norms replaced, in place, by SyncBatchNorm layers (statistics over
    every rank's share of the batch) holding the same parameter and running-statistic tensors:
    the optimisers built on the networks hold them still."""
    from fastinfo.nets import drop_batch_counters

    for net in networks:
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        drop_batch_counters(net)  # the new layers, as the old ones: no count of batches


def broadcast_parameters(modules) -> None:
    """Rank 0's parameters and buffers copied to every rank."""
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, 0)
