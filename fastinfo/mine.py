"""MINE (Belghazi et al. 2018): mutual information estimated by a statistics network T(x, y).

    I(X; Y) >= sup_T  E_{P_XY}[T] - log E_{P_X x P_Y}[exp T]        (variant "dv")
    I(X; Y) >= sup_T  E_{P_XY}[T] - E_{P_X x P_Y}[exp(T - 1)]        (variant "f", MINE-f)

Marginal samples pair each x with the y of another sample (a fresh permutation of the batch on
the device each call). The DV gradient's bias is corrected with a moving average of E[exp T]
kept in the log domain as the buffer ``log_ema`` (NaN until the first update), so it checkpoints
with the module and survives CUDA-graph capture. Variant "pairwise" needs a separable critic
(``SeparableCritic``) and uses all B(B - 1) off-diagonal pairs as marginals.
"""

import torch
from torch import nn

from fastinfo import losses
from fastinfo.losses.checks import check_number

VARIANTS = ("dv", "f", "pairwise")


def mlp(n_in: int, n_out: int, hidden: int = 256, depth: int = 2) -> nn.Sequential:
    layers, width = [], n_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ELU()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, n_out))


class ConcatCritic(nn.Module):
    """T(x, y) = MLP([x, y]): the statistics network of the MINE paper's Gaussian experiments."""

    def __init__(self, x_dim: int, y_dim: int, hidden: int = 256):
        super().__init__()
        self.net = mlp(x_dim + y_dim, 1, hidden)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # -> [B]
        return self.net(torch.cat([x, y], dim=1)).squeeze(1)


class SeparableCritic(nn.Module):
    """T(x, y) = <f(x), g(y)>: every pair of a batch scored by one matrix product."""

    def __init__(self, x_dim: int, y_dim: int, embed_dim: int = 64, hidden: int = 256):
        super().__init__()
        self.f, self.g = mlp(x_dim, embed_dim, hidden), mlp(y_dim, embed_dim, hidden)

    def embed(self, x: torch.Tensor, y: torch.Tensor):
        return self.f(x), self.g(y)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, gy = self.embed(x, y)
        return (fx * gy).sum(1)


class MINE(nn.Module):
    def __init__(self, critic: nn.Module, variant: str = "dv", ema_rate: float = 0.01,
                 bias_correction: bool = True):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        check_number("ema_rate", ema_rate, 0.0, 1.0)
        if variant == "pairwise" and not hasattr(critic, "embed"):
            raise ValueError("variant 'pairwise' needs a separable critic with embed(x, y) -> (f(x), g(y))")
        self.critic, self.variant, self.ema_rate = critic, variant, ema_rate
        self.bias_correction = bias_correction
        # joint and marginal pairs go through the critic as one batch (one launch a layer, not
        # two), unless batch norm would then mix the two batches' statistics
        self.one_call = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())
        self.register_buffer("log_ema", torch.tensor(float("nan")))

    @staticmethod
    def marginal_perm(n: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """A fresh pairing for the marginal samples of a batch of n: x[i] with y[perm[i]]."""
        return torch.randperm(n, device=device, generator=generator)

    def forward(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None,
                update_ema: bool = True, perm: torch.Tensor | None = None) -> torch.Tensor:
        """The bound on I(x; y) for this batch, to maximise. For "dv" its value is the plain DV
        bound and its gradient the bias-corrected one; update_ema=False leaves the average as is
        (e.g. for a generator step that reads the estimate). The marginal pairs x[i] with
        y[perm[i]]: perm is drawn from generator when not given (give it to call this under
        torch.compile, which cannot draw from a torch.Generator)."""
        if x.shape[0] != y.shape[0] or x.shape[0] < 2:
            # one sample is its own marginal: there is nothing to contrast it with
            raise ValueError("x and y must hold the same batch of at least 2 samples, "
                             f"got {x.shape[0]} and {y.shape[0]}")
        if self.variant == "pairwise":
            return losses.mine_dv_bound_pairwise(*self.critic.embed(x, y))
        n = x.shape[0]
        if perm is None:
            perm = self.marginal_perm(n, x.device, generator)
        elif perm.shape != (n,) or perm.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"perm must be a permutation of the batch: int64 indices, shape ({n},); got "
                             f"{perm.dtype}, shape {tuple(perm.shape)}")
        if self.one_call:
            # split, not slices: the backward is one concatenation
            t_joint, t_marginal = self.critic(torch.cat([x, x]), torch.cat([y, y[perm]])).split(n)
        else:
            t_joint, t_marginal = self.critic(x, y), self.critic(x, y[perm])
        if self.variant == "f":
            return losses.mine_f_bound(t_joint, t_marginal)
        log_ema = self.log_ema if self.bias_correction else None
        bound, new_log_ema = losses.mine_dv_bound(t_joint, t_marginal, log_ema, self.ema_rate)
        if update_ema and self.bias_correction and self.training:
            with torch.no_grad():
                self.log_ema.copy_(new_log_ema)
        return bound
