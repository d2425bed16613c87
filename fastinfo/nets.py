"""The networks, one set per image size, each as its paper gives it.

28x28, the InfoGAN paper's MNIST networks (Chen et al. 2016, appendix Table 1):
  G: FC 1024-BN-ReLU, FC 7x7x128-BN-ReLU, 4x4 up-conv 64 stride 2-BN-ReLU, 4x4 up-conv C stride 2.
  D: 4x4 conv 64 stride 2-lReLU, 4x4 conv 128 stride 2-BN-lReLU, FC 1024-BN-lReLU.
32x32, its SVHN and CelebA networks (appendix Tables 3 and 4, the same layers):
  G: FC 2x2x448-BN-ReLU, 4x4 up-conv 256 stride 2-BN-ReLU, 4x4 up-conv 128 stride 2-ReLU,
     4x4 up-conv 64 stride 2-ReLU, 4x4 up-conv C stride 2.
  D: 4x4 conv 64 stride 2-lReLU, 4x4 conv 128 stride 2-BN-lReLU, 4x4 conv 256 stride 2-BN-lReLU.
64x64, the dSprites networks of InfoGAN-CR (Lin et al. 2020), the disentanglement literature's
β-VAE/FactorVAE encoder as a discriminator (here with D's normalisation after each conv layer
but the first, as the paper's D has it, and G's ReLU):
  G: FC 128-BN-ReLU, FC 4x4x64-BN-ReLU, 4x4 up-conv 64, 32, 32 stride 2-BN-ReLU each,
     4x4 up-conv C stride 2.
  D: 4x4 conv 32, 32, 64, 64 stride 2-lReLU each, FC 128-BN-lReLU.
At every size D's body ends in features that a D head (FC 1 logit) and a Q head (FC 128-BN-lReLU,
FC to the code parameters) share. G ends in tanh (images in [-1, 1]), or in Bernoulli logits for
a VAE's decoder, whose encoder is D's body with a Q-like head.
"""

import torch
from torch import nn

from fastinfo.codes import LatentSpec

NORMS = ("batch", "layer", "none")
# the image sides that have networks; a data set of another side is resized to one of them
IMAGE_SIZES = (28, 32, 64)
# the width of D's body's output at each size
BODY_FEATURES = {28: 1024, 32: 256 * 4 * 4, 64: 128}


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


def check_image_size(image_size: int) -> None:
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"there are networks for images of side {', '.join(map(str, IMAGE_SIZES))}, "
                         f"not {image_size}")


def _up(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)  # doubles the side


def _generator_layers(input_dim: int, channels: int, image_size: int) -> list[nn.Module]:
    """G's layers up to its last up-convolution (the one to `channels`), for the image size."""
    check_image_size(image_size)
    if image_size == 28:
        return [
            nn.Linear(input_dim, 1024), nn.BatchNorm1d(1024), nn.ReLU(),
            nn.Linear(1024, 128 * 7 * 7), nn.BatchNorm1d(128 * 7 * 7), nn.ReLU(),
            nn.Unflatten(1, (128, 7, 7)),
            _up(128, 64), nn.BatchNorm2d(64), nn.ReLU(),  # 14x14
            _up(64, channels),  # 28x28
        ]
    if image_size == 32:
        return [
            nn.Linear(input_dim, 448 * 2 * 2), nn.BatchNorm1d(448 * 2 * 2), nn.ReLU(),
            nn.Unflatten(1, (448, 2, 2)),
            _up(448, 256), nn.BatchNorm2d(256), nn.ReLU(),  # 4x4
            _up(256, 128), nn.ReLU(),  # 8x8
            _up(128, 64), nn.ReLU(),  # 16x16
            _up(64, channels),  # 32x32
        ]
    return [
        nn.Linear(input_dim, 128), nn.BatchNorm1d(128), nn.ReLU(),
        nn.Linear(128, 64 * 4 * 4), nn.BatchNorm1d(64 * 4 * 4), nn.ReLU(),
        nn.Unflatten(1, (64, 4, 4)),
        _up(64, 64), nn.BatchNorm2d(64), nn.ReLU(),  # 8x8
        _up(64, 32), nn.BatchNorm2d(32), nn.ReLU(),  # 16x16
        _up(32, 32), nn.BatchNorm2d(32), nn.ReLU(),  # 32x32
        _up(32, channels),  # 64x64
    ]


class Generator(nn.Module):
    """G: images in [-1, 1] (tanh), or with logits=True the Bernoulli logits of a VAE's
    decoder, one per pixel."""

    def __init__(self, input_dim: int, channels: int = 1, logits: bool = False, image_size: int = 28):
        super().__init__()
        self.net = nn.Sequential(
            *_generator_layers(input_dim, channels, image_size),
            nn.Identity() if logits else nn.Tanh(),  # images live in [-1, 1]
        )
        drop_batch_counters(self)

    def forward(self, g_input: torch.Tensor) -> torch.Tensor:  # [B, input_dim] -> [B, C, S, S]
        return self.net(g_input)


class QHead(nn.Module):
    """Q(c | x): categorical logits, Gaussian means and (when learned) log-std per continuous code."""

    def __init__(self, spec: LatentSpec, slope: float, learn_std: bool, norm: str = "batch",
                 n_cont: int | None = None, in_features: int = 1024):
        super().__init__()
        # n_cont: the Gaussians it describes, spec.n_cont unless given (a VAE's encoder: all its latents)
        self.spec, self.learn_std, self.n_cont = spec, learn_std, spec.n_cont if n_cont is None else n_cont
        n_out = sum(spec.cat_sizes) + self.n_cont * (2 if learn_std else 1)
        self.net = nn.Sequential(
            nn.Linear(in_features, 128), _norm1d(norm, 128), nn.LeakyReLU(slope), nn.Linear(128, n_out)
        )

    def forward(self, h: torch.Tensor):
        """h [B, in_features] -> (cat_logits [B, sum K], mean [B, n_cont], log_std [B, n_cont] or None)."""
        k, n = sum(self.spec.cat_sizes), self.n_cont
        # split, not three slices: its backward is one concatenation instead of a zero-filled
        # tensor per slice and their sum
        parts = self.net(h).split([k, n, n] if self.learn_std else [k, n], dim=1)
        return parts[0], parts[1], parts[2] if self.learn_std else None


def _down(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)  # halves the side


def d_body(slope: float, norm: str = "batch", channels: int = 1, image_size: int = 28) -> nn.Sequential:
    """D's body: images [B, C, S, S] -> features [B, BODY_FEATURES[S]]."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    check_image_size(image_size)
    if image_size == 28:
        layers = [
            _down(channels, 64), nn.LeakyReLU(slope),  # 14x14
            _down(64, 128), _norm2d(norm, 128, 7), nn.LeakyReLU(slope),  # 7x7
            nn.Flatten(), nn.Linear(128 * 7 * 7, 1024), _norm1d(norm, 1024), nn.LeakyReLU(slope),
        ]
    elif image_size == 32:
        layers = [
            _down(channels, 64), nn.LeakyReLU(slope),  # 16x16
            _down(64, 128), _norm2d(norm, 128, 8), nn.LeakyReLU(slope),  # 8x8
            _down(128, 256), _norm2d(norm, 256, 4), nn.LeakyReLU(slope),  # 4x4
            nn.Flatten(),
        ]
    else:
        layers = [
            _down(channels, 32), nn.LeakyReLU(slope),  # 32x32
            _down(32, 32), _norm2d(norm, 32, 16), nn.LeakyReLU(slope),  # 16x16
            _down(32, 64), _norm2d(norm, 64, 8), nn.LeakyReLU(slope),  # 8x8
            _down(64, 64), _norm2d(norm, 64, 4), nn.LeakyReLU(slope),  # 4x4
            nn.Flatten(), nn.Linear(64 * 4 * 4, 128), _norm1d(norm, 128), nn.LeakyReLU(slope),
        ]
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """A VAE's q(c | x) q(z | x): D's body, then a head like Q's with the categorical codes'
    logits and a mean and log-std for each Gaussian latent: the noise_dim latents, then the
    n_cont codes (G's input order)."""

    def __init__(self, spec: LatentSpec, slope: float = 0.1, norm: str = "batch", channels: int = 1,
                 image_size: int = 28):
        super().__init__()
        self.body = d_body(slope, norm, channels, image_size)
        self.head = QHead(spec, slope, learn_std=True, norm=norm, n_cont=spec.noise_dim + spec.n_cont,
                          in_features=BODY_FEATURES[image_size])
        drop_batch_counters(self)

    def forward(self, x: torch.Tensor):
        """x [B, C, S, S] -> (cat_logits [B, sum K], mean [B, L], log_std [B, L]), L = noise_dim + n_cont."""
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
        image_size: int = 28,
    ):
        super().__init__()
        self.body = d_body(slope, norm, channels, image_size)
        width = BODY_FEATURES[image_size]
        self.d_head = nn.Linear(width, 1)
        self.q_head = QHead(spec, slope, learn_std, norm, in_features=width)
        drop_batch_counters(self)

    def forward(self, x: torch.Tensor, with_q: bool = True, split: int = 0, q_all: bool = False):
        """x [B, C, S, S] -> (d_logit [B], (cat_logits, mean, log_std) or None).

        split > 0: rows :split and split: are two batches (real, then fake) in one forward. Batch
        norm normalises each with its own statistics and updates its running ones with the first,
        then the second, as two forwards would; Q sees the second batch only, or with q_all each."""
        return self.heads(self.features(x, split), with_q, split, q_all)

    def heads(self, h: torch.Tensor, with_q: bool = True, split: int = 0, q_all: bool = False):
        """The D and Q heads on the body's output h [B, F]: as forward, Q on the rows split:
        (all rows with q_all: Q's batch norm takes each batch on its own, as D's body does)."""
        if not with_q:
            return self.d_head(h).squeeze(1), None
        d = self.d_head(h).squeeze(1)
        if split and q_all:
            halves = zip(*(self.q_head(part) for part in h.split([split, h.shape[0] - split])))
            return d, tuple(None if a is None else torch.cat([a, b]) for a, b in halves)
        return d, self.q_head(h[split:] if split else h)  # h[0:] costs a backward copy

    def features(self, x: torch.Tensor, split: int = 0) -> torch.Tensor:
        """The shared body's output [B, F]; split as in forward."""
        for layer in self.body:
            if split and isinstance(layer, nn.modules.batchnorm._BatchNorm):
                # split, not two slices: the backward is one concatenation, not a zero-filled
                # tensor per slice and their sum
                x = torch.cat([layer(half) for half in x.split([split, x.shape[0] - split])])
            else:
                x = layer(x)
        return x
