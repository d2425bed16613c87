"""How a training step runs: eagerly, or captured whole in a CUDA graph and replayed.

Both take the step's 0-based index and return its metrics as 0-dim device tensors, read later in
one sync; both feed the model the same real batches and the same codes, so a graphed run trains
exactly like an eager one.
"""

import torch

from fastinfo import data, graphs
from fastinfo.losses.backend import HAVE_TRITON

if HAVE_TRITON:
    from fastinfo.kernels import metric_ring


class EagerStep:
    def __init__(self, model, loader: data.DeviceLoader, gen: torch.Generator):
        self.model, self.loader, self.gen = model, loader, gen

    def __call__(self, index: int) -> dict[str, torch.Tensor]:
        reals = [self.loader.next() for _ in range(self.model.batches_per_step(index))]
        return self.model.step(reals, self.gen)


class GraphedStep:
    """The whole iteration — codes sampled on the device, D (or critic) steps, clipping, the G/Q
    step, the optimisers and the metrics — replayed from one CUDA graph per number of real batches
    a step takes (one; n_critic; 100 on WGAN's schedule steps).

    Outside the graph only the real batches are gathered, from the data set (on the device, or
    copied from pinned host memory: data.HostLoader) into static uint8 buffers. The first
    `warmup` steps of each graph run eagerly on a side stream: they are real training steps that
    also build the optimiser state, compile kernels and cache their tables. Each step's metrics
    are written by the graph into the next row of a device table used as a ring of metric_rows
    rows; the returned views stay valid for metric_rows steps, so read them within that.
    """

    def __init__(self, model, loader: data.DeviceLoader, gen: torch.Generator, metric_rows: int, warmup: int = 3):
        self.model, self.loader, self.gen = model, loader, gen
        self.metric_rows, self.warmup = metric_rows, warmup
        self.static: dict[int, torch.Tensor] = {}
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.warm_steps: dict[int, int] = {}
        self.stream = graphs.side_stream()
        device = loader.device
        self.row = torch.zeros(1, dtype=torch.int64, device=device)  # the next metric row, on the device
        self.host_row = 0  # the same, mirrored: every executed step advances both
        self.table: torch.Tensor | None = None
        self.names: list[str] = []

    def _iteration(self, n: int) -> None:
        # all n batches converted at once: two kernels, not two a batch
        reals = list(data.to_model_range(self.static[n]))
        metrics = self.model.step(reals, self.gen)
        if self.table is None:
            self.names = list(metrics)
            self.table = torch.zeros(self.metric_rows, len(self.names), device=self.row.device)
        values = [metrics[k] for k in self.names]
        if HAVE_TRITON:
            metric_ring.write_row_(values, self.table, self.row)
        else:
            self.table.index_copy_(0, self.row, torch.stack([v.float() for v in values]).unsqueeze(0))
            self.row.add_(1).remainder_(self.metric_rows)

    def __call__(self, index: int) -> dict[str, torch.Tensor]:
        n = self.model.batches_per_step(index)
        if n not in self.static:
            shape = (n, self.loader.batch_size, *self.loader.images.shape[1:])
            self.static[n] = torch.empty(shape, dtype=torch.uint8, device=self.loader.device)
        for buffer in self.static[n]:
            self.loader.next_uint8(out=buffer)
        graph = self.graphs.get(n)
        if graph is None and self.warm_steps.get(n, 0) >= self.warmup:
            graph = self.graphs[n] = graphs.capture(lambda: self._iteration(n), warmup=0, generators=[self.gen])[0]
        if graph is not None:
            graph.replay()
        else:
            graphs.on_side_stream(lambda: self._iteration(n), self.stream)
            self.warm_steps[n] = self.warm_steps.get(n, 0) + 1
        row, self.host_row = self.host_row, (self.host_row + 1) % self.metric_rows
        return {k: self.table[row, i] for i, k in enumerate(self.names)}


def for_config(cfg, model, loader: data.DeviceLoader, gen: torch.Generator):
    """The runner a configuration asks for; metrics are read every cfg.log_every steps."""
    if cfg.cuda_graphs:
        return GraphedStep(model, loader, gen, metric_rows=cfg.log_every)
    return EagerStep(model, loader, gen)
