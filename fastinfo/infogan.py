"""InfoGAN (Chen et al. 2016) and its vanilla-GAN baseline: one D/Q step, then one G step.

    D, Q:  min  -E[log D(x)] - E[log(1 - D(G(z, c)))] + lambda * NLL_Q(c | G(z, c))
    G:     min  -E[log D(G(z, c))]                     + lambda * NLL_Q(c | G(z, c))

NLL_Q = H(c) - L_I, so both minimise -lambda * L_I. As in the paper and its original code, the
L_I term trains G, the Q head AND the shared D body (Q sits on D's body, in D's optimiser).
The vanilla GAN feeds the same codes to G as plain noise and has no Q term.
"""

import torch

from fastinfo.base import InfoModel


class InfoGAN(InfoModel):
    def __init__(self, cfg, spec, device):
        super().__init__(cfg, spec, device, norm="batch")
        self.optimizers = {"D": self.adam(self.D.parameters(), cfg.lr_d), "G": self.adam(self.G.parameters(), cfg.lr_g)}

    def train_step(self, reals: list[torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
        """One iteration on one real batch; returns detached metrics that stay on the device."""
        (real,) = reals
        z, cat, cont = self.sample_latent(real.shape[0], gen)
        with self.autocast():
            fake = self.g_fwd(z, cat, cont)

        loss_d, d_real = self.gan_d_loss(real, fake.detach(), cat, cont)
        self.backward_step(loss_d, ("D",))

        # G's step: D and Q were updated above and get no gradient from this loss
        with self.frozen(self.D):
            loss_g, d_fake, per_code = self.gan_g_loss(fake, cat, cont)
        self.backward_step(loss_g, ("G",))

        metrics = {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "d_real": d_real, "d_fake": d_fake}
        if self.use_q:
            metrics.update(self.info_metrics(per_code))
        return metrics
