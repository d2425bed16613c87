"""MINE-GAN: a GAN whose generator also maximises beta * I(c; G(z, c)), with I estimated by MINE
(Belghazi et al. 2018, section 5.1) instead of InfoGAN's Q head.

    D:  min  -E[log D(x)] - E[log(1 - D(G(z, c)))]
    T:  max  I_T(c; G(z, c))                   (the DV bound with the bias-corrected gradient)
    G:  min  -E[log D(G(z, c))] - beta * I_T(c; G(z, c))

The statistics network T(x, c) encodes x with a small conv net and c (the continuous codes, and
the one-hot categorical ones with --mine-codes all) with a linear layer, then an MLP on both.
Adaptive gradient clipping (MINE's paper): the MI gradient on G's parameters is rescaled to
min(||g_gan||, ||g_mi||) * g_mi / ||g_mi|| — norms over all of G's parameters, both taken after
both backward passes, all on the device (no sync).
"""

import torch
import torch.nn.functional as F
from torch import nn

from fastinfo.base import InfoModel
from fastinfo.mine import MINE


def adaptive_clip(g_gan: list[torch.Tensor], g_mi: list[torch.Tensor]) -> list[torch.Tensor]:
    """g_mi rescaled to min(||g_gan||, ||g_mi||) * g_mi / ||g_mi||, global norms over the lists."""
    if len(g_gan) != len(g_mi):
        raise ValueError(f"one gradient a parameter in each list, got {len(g_gan)} and {len(g_mi)}")
    # every tensor's norm in one multi-tensor launch, then both global norms in one reduction
    per_tensor = torch.stack(torch._foreach_norm([*g_gan, *g_mi])).view(2, len(g_gan))
    norm_gan, norm_mi = torch.linalg.vector_norm(per_tensor, dim=1)
    scale = torch.minimum(norm_gan, norm_mi) / norm_mi.clamp_min(1e-12)
    return torch._foreach_mul(g_mi, scale)


def image_encoder(slope: float, channels: int = 1, image_size: int = 28) -> nn.Sequential:
    """T's image branch: 4x4 stride-2 convolutions (32 channels, then 64) until the side is 8 or
    less (28 -> 14 -> 7, 32 -> 16 -> 8, 64 -> 32 -> 16 -> 8), then FC 256."""
    layers, side, width = [], image_size, channels
    while side > 8:
        out = 64 if layers else 32
        layers += [nn.Conv2d(width, out, 4, 2, 1), nn.LeakyReLU(slope)]
        side, width = side // 2, out
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * side * side, 256))


class StatisticsNetwork(nn.Module):
    def __init__(self, code_dim: int, slope: float = 0.1, channels: int = 1, image_size: int = 28):
        super().__init__()
        self.x_enc = image_encoder(slope, channels, image_size)
        self.c_enc = nn.Linear(code_dim, 256)
        self.head = nn.Sequential(nn.LeakyReLU(slope), nn.Linear(256, 256), nn.LeakyReLU(slope), nn.Linear(256, 1))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # -> [B]
        return self.head(self.x_enc(x) + self.c_enc(c)).squeeze(1)


class MineGAN(InfoModel):
    def __init__(self, cfg, spec, device):
        super().__init__(cfg, spec, device, norm="batch")
        self.use_cat = cfg.mine_codes == "all" and spec.n_cat > 0
        code_dim = spec.n_cont + (sum(spec.cat_sizes) if self.use_cat else 0)
        if code_dim == 0:
            raise ValueError("minegan needs continuous codes (or --mine-codes all with a categorical one)")
        critic = StatisticsNetwork(code_dim, cfg.slope, self.channels, self.image_size)
        self.mine = MINE(critic, "dv", ema_rate=cfg.mine_ema).to(device)
        if self.copies:
            self.copies.add(self.mine)
        # D's Q head is unused here: only the body and the D head train
        d_params = [*self.D.body.parameters(), *self.D.d_head.parameters()]
        # G's fp32 parameters, which take the summed gradient (the copies' optimiser reads it there)
        self.g_params = list(self.G.parameters())
        self.optimizers = {
            "D": self.adam(d_params, cfg.lr_d),
            "G": self.adam(self.g_params, cfg.lr_g),
            "T": self.adam(self.mine.parameters(), cfg.lr_q),
        }
        self.mine_loss = self.compiled(self._mine_loss)

    def codes(self, cat: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
        """The codes T sees: continuous ones, plus one-hot categorical ones with --mine-codes all."""
        parts = [cont]
        if self.use_cat:
            parts += [F.one_hot(cat[:, i], k).to(cont) for i, k in enumerate(self.spec.cat_sizes)]
        return torch.cat(parts, dim=1)

    def _mine_loss(self, x, c, perm, weight: float, update_ema: bool):
        """(-weight * MINE's DV bound on I(c; x), the bound detached), the marginal pairing x[i]
        with c[perm[i]]: T's forward, the bound and the loss compiled together under --compile."""
        with self.autocast():
            bound = self.mine(x, c, perm=perm, update_ema=update_ema)
        return -weight * bound, bound.detach()

    def train_step(self, reals: list[torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
        if not self.cfg.compile:
            return self._step(reals, gen)
        # G's graph is walked back twice (the GAN and the MI gradients, kept apart for adaptive
        # clipping): its compiled backward must keep its buffers, not donate them
        with torch._functorch.config.patch(donated_buffer=False):
            return self._step(reals, gen)

    def _step(self, reals: list[torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
        (real,) = reals
        z, cat, cont = self.sample_latent(real.shape[0], gen)
        c = self.codes(cat, cont)
        # with --weight-copies G's layers hold their copies here, and the gradients are the copies'
        g_params = list(self.G.parameters())

        with self.autocast():
            fake = self.g_fwd(z, cat, cont)
        loss_d, d_real = self.gan_d_loss(real, fake.detach(), cat, cont)
        self.backward_step(loss_d, ("D",))

        # the marginal's pairings are drawn here: a compiled function cannot draw from gen
        n = real.shape[0]
        loss_t, mi_t = self.mine_loss(fake.detach(), c, self.mine.marginal_perm(n, self.device, gen), 1.0, True)
        self.backward_step(loss_t, ("T",))

        with self.frozen(self.D, self.mine):
            loss_gan, d_fake, _ = self.gan_g_loss(fake, cat, cont)
            loss_mi, _ = self.mine_loss(fake, c, self.mine.marginal_perm(n, self.device, gen), self.cfg.beta, False)
        g_gan = torch.autograd.grad(self.scaler.scale(loss_gan), g_params, self.grad_seed, retain_graph=True)
        g_mi = torch.autograd.grad(self.scaler.scale(loss_mi), g_params, self.grad_seed)
        if self.copies:
            # the norms, the rescaling and the sum in fp32, as autocast's gradients have them
            g_gan, g_mi = ([g.float() for g in grads] for grads in (g_gan, g_mi))
        if self.cfg.adaptive_clip:
            g_mi = adaptive_clip(g_gan, g_mi)
        opt_g = self.optimizers["G"]
        opt_g.zero_grad(set_to_none=True)
        for p, g in zip(self.g_params, torch._foreach_add(g_gan, g_mi)):  # one launch for every sum
            p.grad = g
        self.scaler.step(opt_g)
        self.scaler.update()

        return {"loss_d": loss_d.detach(), "loss_g": (loss_gan + loss_mi).detach(),
                "d_real": d_real, "d_fake": d_fake, "mi_estimate": mi_t}

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["models"]["T"] = self.mine.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.mine.load_state_dict(state["models"]["T"])
