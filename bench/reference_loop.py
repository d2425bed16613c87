"""The InfoGAN step written the way common public implementations write it: per-step .item()
logging, separate optimisers for D, G and Q, the loss terms in eager PyTorch, no AMP.
The baseline every speed-up of the training step is measured against, on the same networks."""

import math

import torch
import torch.nn.functional as F

from fastinfo.codes import LatentSpec
from fastinfo.nets import Discriminator, Generator


class ReferenceInfoGAN:
    def __init__(self, device, batch_size: int = 128):
        self.spec, self.device, self.B = LatentSpec(), device, batch_size
        self.G = Generator(self.spec.input_dim).to(device)
        self.D = Discriminator(self.spec).to(device)
        critic = [*self.D.body.parameters(), *self.D.d_head.parameters()]
        self.opt_d = torch.optim.Adam(critic, 2e-4, betas=(0.5, 0.999))
        self.opt_q = torch.optim.Adam(self.D.q_head.parameters(), 2e-4, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(self.G.parameters(), 1e-3, betas=(0.5, 0.999))
        self.log = []

    def nll(self, q, cat, cont):
        logits, mean, log_std = q
        ce = F.cross_entropy(logits, cat[:, 0])
        gauss = (0.5 * math.log(2 * math.pi) + log_std + 0.5 * ((cont - mean) / log_std.exp()) ** 2).sum(1).mean()
        return ce + 0.1 * gauss

    def step(self, real):
        z = torch.randn(self.B, 62, device=self.device)
        cat = torch.randint(0, 10, (self.B, 1), device=self.device)
        cont = torch.rand(self.B, 2, device=self.device) * 2 - 1
        fake = self.G(self.spec.g_input(z, cat, cont))
        ones, zeros = torch.ones(self.B, device=self.device), torch.zeros(self.B, device=self.device)

        self.opt_d.zero_grad()
        self.opt_q.zero_grad()
        d_real, _ = self.D(real)
        d_fake, q = self.D(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(d_real, ones)
                  + F.binary_cross_entropy_with_logits(d_fake, zeros) + self.nll(q, cat, cont))
        loss_d.backward()
        self.opt_d.step()
        self.opt_q.step()

        self.opt_g.zero_grad()
        d_fake, q = self.D(fake)
        loss_g = F.binary_cross_entropy_with_logits(d_fake, ones) + self.nll(q, cat, cont)
        loss_g.backward()
        self.opt_g.step()
        self.log.append({"loss_d": loss_d.item(), "loss_g": loss_g.item()})
