"""Each model's step written the way common public implementations write it: per-step .item()
logging, separate optimisers for D, G and Q, the loss terms in eager PyTorch, parameters clamped
one by one, no AMP. The baselines every speed-up of the training step is measured against, on
the same networks and with the same hyperparameters as fastinfo's defaults."""

import math

import torch
import torch.nn.functional as F

from fastinfo.codes import LatentSpec
from fastinfo.minegan import StatisticsNetwork
from fastinfo.nets import Discriminator, Generator


def adam(params, lr, betas=(0.5, 0.999)):
    return torch.optim.Adam(params, lr, betas=betas)


class ReferenceGAN:
    """InfoGAN (use_q) or the vanilla GAN: a D+Q step, then a G step."""

    batches_per_step = 1

    def __init__(self, device, batch_size: int = 128, use_q: bool = True, norm: str = "batch"):
        self.spec, self.device, self.B, self.use_q = LatentSpec(), device, batch_size, use_q
        self.G = Generator(self.spec.input_dim).to(device)
        self.D = Discriminator(self.spec, norm=norm).to(device)
        self.critic = [*self.D.body.parameters(), *self.D.d_head.parameters()]
        self.opt_d = adam(self.critic, 2e-4)
        self.opt_q = adam(self.D.q_head.parameters(), 2e-4)
        self.opt_g = adam(self.G.parameters(), 1e-3)
        self.log = []

    def sample(self):
        z = torch.randn(self.B, 62, device=self.device)
        cat = torch.randint(0, 10, (self.B, 1), device=self.device)
        cont = torch.rand(self.B, 2, device=self.device) * 2 - 1
        return self.spec.g_input(z, cat, cont), cat, cont

    def nll(self, q, cat, cont):
        if not self.use_q:
            return 0.0
        logits, mean, log_std = q
        ce = F.cross_entropy(logits, cat[:, 0])
        gauss = (0.5 * math.log(2 * math.pi) + log_std + 0.5 * ((cont - mean) / log_std.exp()) ** 2).sum(1).mean()
        return ce + 0.1 * gauss

    def d_step(self, real, fake, cat, cont):
        ones, zeros = torch.ones(self.B, device=self.device), torch.zeros(self.B, device=self.device)
        self.opt_d.zero_grad()
        self.opt_q.zero_grad()
        d_real, _ = self.D(real, with_q=False)
        d_fake, q = self.D(fake.detach(), with_q=self.use_q)
        loss_d = (F.binary_cross_entropy_with_logits(d_real, ones)
                  + F.binary_cross_entropy_with_logits(d_fake, zeros) + self.nll(q, cat, cont))
        loss_d.backward()
        self.opt_d.step()
        self.opt_q.step()
        return loss_d

    def step(self, reals):
        (real,) = reals
        g_in, cat, cont = self.sample()
        fake = self.G(g_in)
        loss_d = self.d_step(real, fake, cat, cont)

        self.opt_g.zero_grad()
        d_fake, q = self.D(fake, with_q=self.use_q)
        loss_g = F.binary_cross_entropy_with_logits(d_fake, torch.ones(self.B, device=self.device)) \
            + self.nll(q, cat, cont)
        loss_g.backward()
        self.opt_g.step()
        self.log.append({"loss_d": loss_d.item(), "loss_g": loss_g.item()})


class ReferenceWGAN(ReferenceGAN):
    """Info-WGAN: n_critic critic+Q steps, each followed by clamping every critic parameter; then a
    G step. With gp: the gradient penalty instead of clamping, Adam and layer norm."""

    def __init__(self, device, batch_size: int = 128, gp: bool = False, n_critic: int = 5):
        super().__init__(device, batch_size, use_q=True, norm="layer" if gp else "batch")
        self.gp, self.batches_per_step = gp, n_critic
        if gp:
            self.opt_d = adam(self.critic, 1e-4, betas=(0.5, 0.9))
            self.opt_g = adam(self.G.parameters(), 1e-4, betas=(0.5, 0.9))
        else:
            self.opt_d = torch.optim.RMSprop(self.critic, lr=5e-5)
            self.opt_g = torch.optim.RMSprop(self.G.parameters(), lr=5e-5)

    def penalty(self, real, fake):
        eps = torch.rand(real.shape[0], 1, 1, 1, device=self.device)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        d_hat, _ = self.D(x_hat, with_q=False)
        grad = torch.autograd.grad(d_hat, x_hat, torch.ones_like(d_hat), create_graph=True)[0]
        return ((grad.view(grad.shape[0], -1).norm(2, dim=1) - 1) ** 2).mean()

    def step(self, reals):
        for real in reals:
            g_in, cat, cont = self.sample()
            fake = self.G(g_in).detach()
            self.opt_d.zero_grad()
            self.opt_q.zero_grad()
            d_real, _ = self.D(real, with_q=False)
            d_fake, q = self.D(fake)
            loss_d = d_fake.mean() - d_real.mean() + self.nll(q, cat, cont)
            if self.gp:
                loss_d = loss_d + 10.0 * self.penalty(real, fake)
            loss_d.backward()
            self.opt_d.step()
            self.opt_q.step()
            if not self.gp:
                for p in self.critic:
                    p.data.clamp_(-0.01, 0.01)
            self.log.append({"loss_d": loss_d.item()})

        g_in, cat, cont = self.sample()
        self.opt_g.zero_grad()
        d_fake, q = self.D(self.G(g_in))
        loss_g = -d_fake.mean() + self.nll(q, cat, cont)
        loss_g.backward()
        self.opt_g.step()
        self.log.append({"loss_g": loss_g.item()})


class ReferenceMineGAN(ReferenceGAN):
    """MINE-GAN: a D step, a step of the statistics network T on the DV bound with the moving
    average of E[exp T] (MINE's public code), then a G step with the MI gradient rescaled by the
    GAN gradient's norm, both summed parameter by parameter."""

    def __init__(self, device, batch_size: int = 128):
        super().__init__(device, batch_size, use_q=False)
        self.T = StatisticsNetwork(2, 0.1).to(device)
        self.opt_t = adam(self.T.parameters(), 2e-4)
        self.ma_et = 1.0

    def mi(self, x, c):
        t = self.T(x, c).mean()
        et = torch.exp(self.T(x, c[torch.randperm(c.shape[0], device=self.device)]))
        return t, et

    def step(self, reals):
        (real,) = reals
        g_in, cat, cont = self.sample()
        fake = self.G(g_in)
        loss_d = self.d_step(real, fake, cat, cont)

        t, et = self.mi(fake.detach(), cont)
        self.ma_et = 0.99 * self.ma_et + 0.01 * et.mean().detach()
        loss_t = -(t - et.mean() / self.ma_et.mean())
        self.opt_t.zero_grad()
        loss_t.backward()
        self.opt_t.step()
        mi_estimate = (t - torch.log(et.mean())).item()

        params = list(self.G.parameters())
        d_fake, _ = self.D(fake, with_q=False)
        loss_gan = F.binary_cross_entropy_with_logits(d_fake, torch.ones(self.B, device=self.device))
        t, et = self.mi(fake, cont)
        mi_g = t - torch.log(et.mean())
        g_gan = torch.autograd.grad(loss_gan, params, retain_graph=True)
        g_mi = torch.autograd.grad(-mi_g, params)
        norm_gan = torch.sqrt(sum((g ** 2).sum() for g in g_gan))
        norm_mi = torch.sqrt(sum((g ** 2).sum() for g in g_mi))
        scale = torch.min(norm_gan, norm_mi) / (norm_mi + 1e-12)
        self.opt_g.zero_grad()
        for p, a, b in zip(params, g_gan, g_mi):
            p.grad = a + scale * b
        self.opt_g.step()
        self.log.append({"loss_d": loss_d.item(), "loss_g": loss_gan.item(), "mi": mi_estimate})


REFERENCES = {
    "infogan": lambda device, B: ReferenceGAN(device, B),
    "gan": lambda device, B: ReferenceGAN(device, B, use_q=False),
    "infowgan": lambda device, B: ReferenceWGAN(device, B),
    "infowgan-gp": lambda device, B: ReferenceWGAN(device, B, gp=True),
    "minegan": lambda device, B: ReferenceMineGAN(device, B),
}
