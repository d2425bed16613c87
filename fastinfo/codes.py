"""Latent specification: noise z, categorical codes and continuous codes, as in InfoGAN.

G's input is [z, one-hot(c_cat_1), ..., one-hot(c_cat_n), c_cont] in that order.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

NOISE_PRIORS = ("normal", "uniform")
CONT_PRIORS = ("uniform", "normal")  # InfoGAN's U(-1, 1); a VAE's N(0, 1)


@dataclass(frozen=True)
class LatentSpec:
    noise_dim: int = 62
    cat_sizes: tuple[int, ...] = (10,)
    n_cont: int = 2
    noise_prior: str = "normal"  # "normal": N(0, I); "uniform": U(-1, 1) as in the original code
    noise_scale: float = 1.0  # z is drawn from the prior times this: the codes' weight in G's input grows as it falls
    cont_prior: str = "uniform"  # the continuous codes': "uniform" U(-1, 1) (InfoGAN), "normal" N(0, 1) (a VAE)

    def __post_init__(self):
        object.__setattr__(self, "cat_sizes", tuple(int(k) for k in self.cat_sizes))
        if self.noise_dim < 0 or self.n_cont < 0:
            raise ValueError(
                f"noise_dim and n_cont must be >= 0, got {self.noise_dim} and {self.n_cont}"
            )
        if any(k < 2 for k in self.cat_sizes):
            raise ValueError(f"every categorical code needs >= 2 categories, got {self.cat_sizes}")
        if self.noise_prior not in NOISE_PRIORS:
            raise ValueError(f"noise_prior must be one of {NOISE_PRIORS}, got {self.noise_prior!r}")
        if self.cont_prior not in CONT_PRIORS:
            raise ValueError(f"cont_prior must be one of {CONT_PRIORS}, got {self.cont_prior!r}")
        if not self.noise_scale > 0:
            raise ValueError(f"noise_scale must be positive, got {self.noise_scale}")
        if self.input_dim == 0:
            raise ValueError("the latent space is empty: give noise, a categorical or a continuous code")

    @property
    def n_cat(self) -> int:
        return len(self.cat_sizes)

    @property
    def n_codes(self) -> int:
        return self.n_cat + self.n_cont

    @property
    def input_dim(self) -> int:
        return self.noise_dim + sum(self.cat_sizes) + self.n_cont

    @property
    def code_names(self) -> list[str]:
        """c1..cn: the categorical codes first, then the continuous ones (the paper's numbering)."""
        return [f"c{i + 1}" for i in range(self.n_codes)]

    def entropy(self) -> torch.Tensor:
        """H(c_i) per code in nats, [n_codes]: ln K for a uniform categorical code and the
        differential entropy of a continuous one's prior: ln 2 for U(-1, 1), ln(2 pi e) / 2 for N(0, 1)."""
        h_cont = math.log(2.0) if self.cont_prior == "uniform" else 0.5 * math.log(2 * math.pi * math.e)
        return torch.tensor([math.log(k) for k in self.cat_sizes] + [h_cont] * self.n_cont)

    def sample(self, batch_size: int, device=None, generator: torch.Generator | None = None):
        """Draw (z [B, noise_dim], cat [B, n_cat] int64, cont [B, n_cont]) from the prior, z
        times noise_scale."""
        kw = dict(device=device, generator=generator)
        if self.noise_prior == "normal":
            z = torch.randn(batch_size, self.noise_dim, **kw)
        else:
            z = torch.empty(batch_size, self.noise_dim, device=device).uniform_(-1, 1, generator=generator)
        if self.noise_scale != 1:
            z.mul_(self.noise_scale)
        if self.n_cat == 0:
            cat = torch.zeros(batch_size, 0, dtype=torch.long, device=device)
        elif self.n_cat == 1:  # drawn in its column's shape: the same numbers, and no stack kernel
            cat = torch.randint(0, self.cat_sizes[0], (batch_size, 1), **kw)
        else:
            cat = torch.stack([torch.randint(0, k, (batch_size,), **kw) for k in self.cat_sizes], 1)
        if self.cont_prior == "uniform":  # one kernel, and the same numbers as rand() * 2 - 1
            cont = torch.empty(batch_size, self.n_cont, device=device).uniform_(-1, 1, generator=generator)
        else:
            cont = torch.randn(batch_size, self.n_cont, **kw)
        return z, cat, cont

    def g_input(self, z: torch.Tensor, cat: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
        """Assemble G's input [B, input_dim] from noise and codes."""
        onehots = [F.one_hot(cat[:, i], k).to(z.dtype) for i, k in enumerate(self.cat_sizes)]
        return torch.cat([z, *onehots, cont.to(z.dtype)], dim=1)

    def traversal_values(self, code: int, n_values: int = 10, span: float = 2.0, device=None) -> torch.Tensor:
        """The values [n_values] a traversal sweeps code over: a categorical code's 0..K-1, a
        continuous code's n_values points from -span to span."""
        if not 0 <= code < self.n_codes:
            raise ValueError(f"code index must be in [0, {self.n_codes}), got {code}")
        if code < self.n_cat:
            return torch.arange(self.cat_sizes[code], device=device)
        return torch.linspace(-span, span, n_values, device=device)

    def traversal(
        self,
        code: int,
        n_rows: int,
        n_values: int = 10,
        span: float = 2.0,
        device=None,
        generator: torch.Generator | None = None,
    ):
        """A batch [n_rows * n_values] that sweeps one code along each row, everything else fixed
        per row (the paper's Figure 2 layout). A categorical code takes its values 0..K-1 (n_values
        is ignored); a continuous code goes linearly from -span to span.

        Returns (z, cat, cont, n_values)."""
        values = self.traversal_values(code, n_values, span, device)
        n_values = len(values)
        z, cat, cont = self.sample(n_rows, device=device, generator=generator)
        z, cat, cont = (t.repeat_interleave(n_values, dim=0) for t in (z, cat, cont))
        sweep = values.repeat(n_rows)
        if code < self.n_cat:
            cat[:, code] = sweep
        else:
            cont[:, code - self.n_cat] = sweep
        return z, cat, cont, n_values
