"""What the optimiser kernels' tests share: shapes, a tolerance per dtype, a small net to train."""

import torch

from fastinfo import graphs

# several blocks a tensor at block 16, a 0-dim and an empty one, three dtypes
SHAPES = [(37,), (3, 5), (), (0,), (129, 3), (1,), (4, 4, 3, 3)]


def assert_close_in_dtype(got, want, dtype):
    """Within a rounding of the tensor's dtype (fp32 math before one final rounding)."""
    tol = {torch.float32: 2e-6, torch.bfloat16: 8e-3, torch.float16: 1e-3}[dtype]
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=1e-7)


def net(seed: int = 0) -> torch.nn.Module:
    """No bias before batch norm: its gradient is rounding noise, which RMSprop scales up to
    lr-sized steps, and two correct implementations would part at once."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(7, 33, bias=False), torch.nn.BatchNorm1d(33), torch.nn.LeakyReLU(),
                               torch.nn.Linear(33, 1))


def train(model, opt, steps: int, after_step=lambda: None):
    torch.manual_seed(1)
    for _ in range(steps):
        opt.zero_grad()
        model(torch.randn(16, 7)).square().mean().backward()
        opt.step()
        after_step()


def assert_graph_replays_equal_eager_steps(optimizer):
    """Two nets, one stepped by replays of a captured step, one eagerly, on the same inputs."""
    models = [net().cuda() for _ in range(2)]
    opts = [optimizer(m.parameters()) for m in models]
    x = torch.randn(64, 7, device="cuda")

    def step(model, opt, inputs):
        opt.zero_grad(set_to_none=True)
        model(inputs).square().mean().backward()
        opt.step()

    graph, _ = graphs.capture(lambda: step(models[0], opts[0], x), warmup=2)
    for _ in range(2):
        step(models[1], opts[1], x)  # eager, as many steps as the warm-up made
    for _ in range(3):
        x.copy_(torch.randn_like(x))
        graph.replay()
        step(models[1], opts[1], x)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b)
