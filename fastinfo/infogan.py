"""InfoGAN (Chen et al. 2016) and its vanilla-GAN baseline: one D/Q step, then one G step.

    D, Q:  min  -E[log D(x)] - E[log(1 - D(G(z, c)))] + lambda * NLL_Q(c | G(z, c))
    G:     min  -E[log D(G(z, c))]                     + lambda * NLL_Q(c | G(z, c))

NLL_Q = H(c) - L_I, so both minimise -lambda * L_I. As in the paper and its original code, the
L_I term trains G, the Q head AND the shared D body (Q sits on D's body, in D's optimiser).
The vanilla GAN feeds the same codes to G as plain noise and has no Q term.
"""

import contextlib

import torch

from fastinfo import losses
from fastinfo.codes import LatentSpec
from fastinfo.config import TrainConfig
from fastinfo.losses import reference
from fastinfo.nets import Discriminator, Generator


class InfoGAN:
    def __init__(self, cfg: TrainConfig, spec: LatentSpec, device: torch.device):
        self.cfg, self.spec, self.device = cfg, spec, device
        self.use_q = cfg.model == "infogan"
        self.G = Generator(spec.input_dim).to(device)
        self.D = Discriminator(spec, cfg.slope, cfg.learn_std).to(device)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=betas)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=betas)
        # bf16 has fp32's range and needs no loss scaling; fp16 does
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
        self.g_fwd, self.d_fwd = self.G, self.D
        if cfg.compile:
            self.g_fwd, self.d_fwd = torch.compile(self.G), torch.compile(self.D)
        self.entropy = spec.entropy().to(device)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def info_nll(self, q, cat, cont):
        """(lambda-weighted NLL, per-code NLL [n_codes]) of the codes under Q's outputs."""
        cat_logits, mean, log_std = q
        has_cat, has_cont = self.spec.n_cat > 0, self.spec.n_cont > 0
        args = (
            cat_logits if has_cat else None, cat if has_cat else None,
            mean if has_cont else None, cont if has_cont else None,
            log_std if has_cont else None,
        )
        if self.cfg.loss_backend == "torch":
            terms = reference.info_nll_terms(*args, self.spec.cat_sizes)
            n = self.spec.n_cat
            loss = self.cfg.lambda_cat * terms[:, :n].sum(1) + self.cfg.lambda_cont * terms[:, n:].sum(1)
            return loss.mean(), terms.mean(0)
        return losses.info_nll_and_per_code(
            *args, cat_sizes=self.spec.cat_sizes or None,
            cat_weight=self.cfg.lambda_cat, cont_weight=self.cfg.lambda_cont,
        )

    def step(self, real: torch.Tensor, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """One training iteration; returns detached metrics that stay on the device."""
        B = real.shape[0]
        z, cat, cont = self.spec.sample(B, self.device, gen)
        g_in = self.spec.g_input(z, cat, cont)

        with self.autocast():
            fake = self.g_fwd(g_in)
            d_real, _ = self.d_fwd(real, with_q=False)
            d_fake, q = self.d_fwd(fake.detach(), with_q=self.use_q)
            loss_d = losses.gan_d_loss(d_real.float(), d_fake.float())
            if self.use_q:
                loss_d = loss_d + self.info_nll(q, cat, cont)[0]
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_d)

        with self.autocast():
            d_fake, q = self.d_fwd(fake, with_q=self.use_q)
            loss_g = losses.gan_g_loss(d_fake.float())
            if self.use_q:
                info, per_code = self.info_nll(q, cat, cont)
                loss_g = loss_g + info
        self.opt_g.zero_grad(set_to_none=True)
        # only G's gradients: D and Q were updated above and must not collect this loss
        self.scaler.scale(loss_g).backward(inputs=list(self.G.parameters()))
        self.scaler.step(self.opt_g)
        self.scaler.update()

        metrics = {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                   "d_real": torch.sigmoid(d_real.detach().float()).mean(),
                   "d_fake": torch.sigmoid(d_fake.detach().float()).mean()}
        if self.use_q:
            info_lb = losses.mutual_info_lower_bound(per_code.detach(), self.entropy)
            for i, name in enumerate(self.spec.code_names):
                metrics[f"info_{name}"] = info_lb[i]
        return metrics

    @torch.no_grad()
    def generate(self, z, cat, cont) -> torch.Tensor:
        """Images from G in eval mode (batch-norm running statistics)."""
        was_training = self.G.training
        self.G.eval()
        try:
            return self.G(self.spec.g_input(z, cat, cont))
        finally:
            self.G.train(was_training)

    @torch.no_grad()
    def predict_codes(self, images: torch.Tensor) -> torch.Tensor:
        """Q's categorical logits [N, sum K] for images in [-1, 1], in eval mode."""
        was_training = self.D.training
        self.D.eval()
        try:
            return self.D(images, with_q=True)[1][0]
        finally:
            self.D.train(was_training)

    def state_dict(self) -> dict:
        return {
            "models": {"G": self.G.state_dict(), "D": self.D.state_dict()},
            "optimizers": {"G": self.opt_g.state_dict(), "D": self.opt_d.state_dict()},
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["models"]["G"])
        self.D.load_state_dict(state["models"]["D"])
        self.opt_g.load_state_dict(state["optimizers"]["G"])
        self.opt_d.load_state_dict(state["optimizers"]["D"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
