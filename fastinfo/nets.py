"""The InfoGAN paper's MNIST networks (Chen et al. 2016, Table 1 of the appendix).

G: FC 1024-BN-ReLU, FC 7x7x128-BN-ReLU, 4x4 up-conv 64 stride 2-BN-ReLU, 4x4 up-conv 1 stride 2.
D: 4x4 conv 64 stride 2-lReLU, 4x4 conv 128 stride 2-BN-lReLU, FC 1024-BN-lReLU, then
   a D head (FC 1 logit) and a Q head (FC 128-BN-lReLU, FC to the code parameters)
   that share everything before them.
A VAE's decoder is G ending in Bernoulli logits, and its encoder D's body with a Q-like head.
"""

import torch
from torch import nn

from fastinfo.codes import LatentSpec

NORMS = ("batch", "layer", "none")


def drop_batch_counters(net: nn.Module) -> None:
    """Remove batch norm's count of training batches. The count is read only with momentum=None
    (a cumulative average, which these networks do not use), yet advancing it costs a kernel per
    batch-norm call: 11 of an InfoGAN step's ~200. A state dict that has the counts still loads."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.num_batches_tracked = None
            # on the layer itself: batch norm adds a count to a state dict without version metadata
            m.register_load_state_dict_pre_hook(_ignore_batch_counter)


def _ignore_batch_counter(module, state_dict, prefix, *_):
    state_dict.pop(prefix + "num_batches_tracked", None)


def _norm1d(kind: str, n: int) -> nn.Module:
    return {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}.get(kind, lambda _: nn.Identity())(n)


def _norm2d(kind: str, c: int, hw: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "layer":
        return nn.LayerNorm([c, hw, hw])
    return nn.Identity()


class Generator(nn.Module):
    """G: images in [-1, 1] (tanh), or with logits=True the Bernoulli logits of a VAE's
    decoder, one per pixel."""

    def __init__(self, input_dim: int, channels: int = 1, logits: bool = False):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_dim, 1024),
            nn.BatchNorm1d(1024),
            nn.ReLU(),
            nn.Linear(1024, 128 * 7 * 7),
            nn.BatchNorm1d(128 * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (128, 7, 7)),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1),  # 14x14
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.ConvTranspose2d(64, channels, 4, stride=2, padding=1),  # 28x28
            nn.Identity() if logits else nn.Tanh(),  # images live in [-1, 1]
        )
        drop_batch_counters(self)

    def forward(self, g_input: torch.Tensor) -> torch.Tensor:  # [B, input_dim] -> [B, C, 28, 28]
        return self.net(g_input)


class QHead(nn.Module):
    """Q(c | x): categorical logits, Gaussian means and (when learned) log-std per continuous code."""

    def __init__(self, spec: LatentSpec, slope: float, learn_std: bool, norm: str = "batch",
                 n_cont: int | None = None):
        super().__init__()
        # n_cont: the Gaussians it describes, spec.n_cont unless given (a VAE's encoder: all its latents)
        self.spec, self.learn_std, self.n_cont = spec, learn_std, spec.n_cont if n_cont is None else n_cont
        n_out = sum(spec.cat_sizes) + self.n_cont * (2 if learn_std else 1)
        self.net = nn.Sequential(
            nn.Linear(1024, 128), _norm1d(norm, 128), nn.LeakyReLU(slope), nn.Linear(128, n_out)
        )

    def forward(self, h: torch.Tensor):
        """h [B, 1024] -> (cat_logits [B, sum K], mean [B, n_cont], log_std [B, n_cont] or None)."""
        k, n = sum(self.spec.cat_sizes), self.n_cont
        # split, not three slices: its backward is one concatenation instead of a zero-filled
        # tensor per slice and their sum
        parts = self.net(h).split([k, n, n] if self.learn_std else [k, n], dim=1)
        return parts[0], parts[1], parts[2] if self.learn_std else None


def d_body(slope: float, norm: str = "batch", channels: int = 1) -> nn.Sequential:
    """D's body: images [B, C, 28, 28] -> features [B, 1024]."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return nn.Sequential(
        nn.Conv2d(channels, 64, 4, stride=2, padding=1),  # 14x14
        nn.LeakyReLU(slope),
        nn.Conv2d(64, 128, 4, stride=2, padding=1),  # 7x7
        _norm2d(norm, 128, 7),
        nn.LeakyReLU(slope),
        nn.Flatten(),
        nn.Linear(128 * 7 * 7, 1024),
        _norm1d(norm, 1024),
        nn.LeakyReLU(slope),
    )


class Encoder(nn.Module):
    """A VAE's q(c | x) q(z | x): D's body, then a head like Q's with the categorical codes'
    logits and a mean and log-std for each Gaussian latent: the noise_dim latents, then the
    n_cont codes (G's input order)."""

    def __init__(self, spec: LatentSpec, slope: float = 0.1, norm: str = "batch", channels: int = 1):
        super().__init__()
        self.body = d_body(slope, norm, channels)
        self.head = QHead(spec, slope, learn_std=True, norm=norm, n_cont=spec.noise_dim + spec.n_cont)
        drop_batch_counters(self)

    def forward(self, x: torch.Tensor):
        """x [B, C, 28, 28] -> (cat_logits [B, sum K], mean [B, L], log_std [B, L]), L = noise_dim + n_cont."""
        return self.head(self.body(x))


class Discriminator(nn.Module):
    """Shared body with a D head (real/fake logit) and a Q head."""

    def __init__(
        self,
        spec: LatentSpec,
        slope: float = 0.1,
        learn_std: bool = True,
        norm: str = "batch",
        channels: int = 1,
    ):
        super().__init__()
        self.body = d_body(slope, norm, channels)
        self.d_head = nn.Linear(1024, 1)
        self.q_head = QHead(spec, slope, learn_std, norm)
        drop_batch_counters(self)

    def forward(self, x: torch.Tensor, with_q: bool = True, split: int = 0, q_all: bool = False):
        """x [B, C, 28, 28] -> (d_logit [B], (cat_logits, mean, log_std) or None).

        split > 0: rows :split and split: are two batches (real, then fake) in one forward. Batch
        norm normalises each with its own statistics and updates its running ones with the first,
        then the second, as two forwards would; Q sees the second batch only, or with q_all each."""
        return self.heads(self.features(x, split), with_q, split, q_all)

    def heads(self, h: torch.Tensor, with_q: bool = True, split: int = 0, q_all: bool = False):
        """The D and Q heads on the body's output h [B, 1024]: as forward, Q on the rows split:
        (all rows with q_all: Q's batch norm takes each batch on its own, as D's body does)."""
        if not with_q:
            return self.d_head(h).squeeze(1), None
        d = self.d_head(h).squeeze(1)
        if split and q_all:
            halves = zip(*(self.q_head(part) for part in h.split([split, h.shape[0] - split])))
            return d, tuple(None if a is None else torch.cat([a, b]) for a, b in halves)
        return d, self.q_head(h[split:] if split else h)  # h[0:] costs a backward copy

    def features(self, x: torch.Tensor, split: int = 0) -> torch.Tensor:
        """The shared body's output [B, 1024]; split as in forward."""
        for layer in self.body:
            if split and isinstance(layer, nn.modules.batchnorm._BatchNorm):
                # split, not two slices: the backward is one concatenation, not a zero-filled
                # tensor per slice and their sum
                x = torch.cat([layer(half) for half in x.split([split, x.shape[0] - split])])
            else:
                x = layer(x)
        return x
