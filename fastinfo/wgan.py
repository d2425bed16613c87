"""Wasserstein GANs with InfoGAN's L_I term: WGAN (Arjovsky et al. 2017, weight clipping) and
WGAN-GP (Gulrajani et al. 2017, gradient penalty), each with and without a Q head.

    critic, Q:  min  E[D(G(z, c))] - E[D(x)] (+ gp_weight * (||grad D(x_hat)|| - 1)^2)
                     + lambda * NLL_Q(c | G(z, c))
    G:          min  -E[D(G(z, c))] + lambda * NLL_Q(c | G(z, c))

n_critic critic steps per generator step. The clipping variants clip the critic — the shared body
and the D head — to [-clip, clip] after every critic step, with RMSprop as in the WGAN paper. The
Q head's own layers are not clipped: they are not part of the critic function whose Lipschitz
constant clipping bounds, and clipping them would only cap Q's capacity. Q keeps InfoGAN's Adam.
The gradient-penalty variants use Adam and no batch norm in the critic (layer norm by default),
since the penalty is taken per sample.
"""

import torch

from fastinfo import losses, registry
from fastinfo.base import InfoModel
from fastinfo.losses import penalty


class InfoWGAN(InfoModel):
    def __init__(self, cfg, spec, device):
        self.gp = registry.entry(cfg.model).critic == "gp"
        norm = cfg.critic_norm if cfg.critic_norm != "auto" else ("layer" if self.gp else "batch")
        super().__init__(cfg, spec, device, norm=norm)
        self.critic_layers = [*self.D.body, self.D.d_head]
        self.critic_params = [p for layer in self.critic_layers for p in layer.parameters()]
        if self.gp:
            opt_d, opt_g = self.adam(self.critic_params, cfg.lr_d), self.adam(self.G.parameters(), cfg.lr_g)
        else:
            # the clip is part of the critic's optimiser step
            opt_d = self.rmsprop(self.critic_params, cfg.lr_d, clip_value=cfg.clip)
            opt_g = self.rmsprop(self.G.parameters(), cfg.lr_g)
        self.optimizers = {"D": opt_d, "G": opt_g}
        if self.use_q:
            self.optimizers["Q"] = self.adam(self.D.q_head.parameters(), cfg.lr_q, betas=(0.5, 0.999))
        # the penalty's gradient ends in a transposed convolution to one channel, as G does: its
        # compiled backward needs autograd's layout on a GPU for the same reason (see InfoModel)
        self.critic_loss = self.compiled(self._critic_loss, **({"layout_optimization": False} if self.gp else {}))
        self.wgan_g_loss = self.compiled(self._wgan_g_loss)

    def batches_per_step(self, step: int) -> int:
        """n_critic, or WGAN's schedule: 100 critic steps for the first 25 generator steps and
        every 500th."""
        if self.cfg.wgan_schedule and (step < 25 or step % 500 == 0):
            return 100
        return self.cfg.n_critic

    def _critic_loss(self, real, fake, cat, cont, gp_eps):
        """(the critic's loss E[D(G(z))] - E[D(x)], with a Q head plus lambda * NLL, with the
        gradient penalty at eps * real + (1 - eps) * fake when gp_eps is given; the Wasserstein
        estimate E[D(x)] - E[D(G(z))])."""
        with self.autocast():
            if gp_eps is None:
                d_real, d_fake, q = self.d_real_fake(real, fake, with_q=self.use_q)
                gp = 0.0
            else:
                d_real, d_fake, q, gp = self.scores_and_penalty(real, fake, gp_eps)
            distance = d_real.float().mean() - d_fake.float().mean()
            loss, _ = self.add_info_term(self.cfg.gp_weight * gp - distance, q, cat, cont)
        return loss, distance.detach()

    def scores_and_penalty(self, real, fake, eps):
        """(D(x), D(G(z)), Q's outputs on fake, the gradient penalty), the penalty a first-order
        function of the critic's weights, compiled with the rest. With --joint-d one forward of
        the critic's body takes real, fake and the points between them, and only the last rows
        go back to the input for the penalty: one convolution or matrix product a layer where
        two forwards made two. With --no-joint-d, D's two forwards and the penalty's own."""
        if not self.cfg.joint_d:
            d_real, d_fake, q = self.d_real_fake(real, fake, with_q=self.use_q)
            return d_real, d_fake, q, losses.gradient_penalty(self.critic_layers, real, fake, eps)
        n = real.shape[0]
        # in fake's dtype: under autocast D's first convolution casts its input to it anyway
        x = torch.cat([real, fake, penalty.interpolate(real, fake, eps)]).to(fake.dtype)
        h, grad = penalty.critic_features_and_input_grad(self.critic_layers, x, grad_from=2 * n)
        d, q = self.D.heads(h.split([2 * n, n])[0], with_q=self.use_q, split=n)
        return *d.float().split([n, n]), q, penalty.penalty_of_grad(grad)

    def _wgan_g_loss(self, fake, cat, cont):
        """(G's loss -E[D(G(z))], with a Q head plus lambda * NLL; per-code NLL or None). Run it
        with the critic frozen."""
        with self.autocast():
            d_fake, q = self.D(fake, with_q=self.use_q)
            return self.add_info_term(-d_fake.float().mean(), q, cat, cont)

    def critic_step(self, real: torch.Tensor, gen: torch.Generator):
        z, cat, cont = self.sample_latent(real.shape[0], gen)
        with self.autocast(), torch.no_grad():
            fake = self.g_fwd(z, cat, cont)
        gp_eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, generator=gen) if self.gp else None
        loss, distance = self.critic_loss(real, fake, cat, cont, gp_eps)
        self.backward_step(loss, ("D", "Q") if self.use_q else ("D",))
        return loss.detach(), distance

    def train_step(self, reals: list[torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
        """One critic step on each real batch (batches_per_step of them), then one generator step."""
        for real in reals:
            loss_d, distance = self.critic_step(real, gen)

        z, cat, cont = self.sample_latent(reals[-1].shape[0], gen)  # the process's batch (fastinfo.distributed)
        with self.autocast():
            fake = self.g_fwd(z, cat, cont)
        with self.frozen(self.D):
            loss_g, per_code = self.wgan_g_loss(fake, cat, cont)
        self.backward_step(loss_g, ("G",))

        metrics = {"loss_d": loss_d, "loss_g": loss_g.detach(), "wasserstein": distance}
        if self.use_q:
            metrics.update(self.info_metrics(per_code))
        return metrics
