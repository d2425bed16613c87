"""The poster's information-regularised VAE, and the plain VAE it is compared with.

Model P(z) P(c) P(x | z, c), posterior q(c | x) q(z | x), as JointVAE (Dupont 2018):

    L_VAE = E_q[-log p(x | z, c)] + KL(q(z | x) ‖ N(0, I)) + KL(q(c | x) ‖ Uniform)

with the categorical code sampled by Gumbel-softmax, and optionally JointVAE's capacity
control: each KL term becomes gamma * |KL - C(t)|, C rising linearly from 0. InfoVAE adds the
information term InfoGAN uses (lambda * NLL = -lambda * L_I + const): draw (z, c) from the prior,
decode, encode the decoded image again, and score the drawn codes under q(c | x^) and the
continuous codes' q(z | x^). It trains encoder and decoder alike. The vae model is the same
without it.

The networks are the paper's: the encoder is D's body with a Q-like head, the decoder is G
ending in one Bernoulli logit per pixel (images as grey levels in [0, 1] are its targets).
"""

import math

import torch
import torch.nn.functional as F

from fastinfo import data, losses
from fastinfo.base import InfoModel
from fastinfo.nets import Encoder, Generator


def gumbel_softmax(logits: torch.Tensor, uniform: torch.Tensor, temperature: float, cat_sizes: tuple[int, ...],
                   hard: bool = False) -> torch.Tensor:
    """Relaxed one-hot samples [B, sum K] of each categorical code from its logits [B, sum K],
    given uniform noise in (0, 1) of the same shape. hard=True: the one-hot argmax forward and
    the relaxed sample's gradient backward (straight-through)."""
    gumbel = -torch.log(-torch.log(uniform))
    parts = []
    for y in torch.split((logits.float() + gumbel) / temperature, list(cat_sizes), dim=1):
        soft = F.softmax(y, dim=1)
        if hard:
            one_hot = F.one_hot(soft.argmax(1), soft.shape[1]).to(soft.dtype)
            soft = one_hot - soft.detach() + soft
        parts.append(soft)
    return torch.cat(parts, dim=1)


def capacity(step: torch.Tensor, maximum: float, steps: int) -> torch.Tensor:
    """JointVAE's C(t): from 0 at step 0 up to maximum at `steps`, then flat; step a 0-dim tensor."""
    return torch.clamp(step.float() / steps, max=1.0) * maximum


class InfoVAE(InfoModel):
    def __init__(self, cfg, spec, device):
        super().__init__(cfg, spec, device, norm="batch")
        self.infers_codes = True
        # one optimiser, the encoder at --lr-d and the decoder at --lr-g
        self.optimizers = {"VAE": self.adam([{"params": list(self.encoder.parameters()), "lr": cfg.lr_d},
                                             {"params": list(self.decoder.parameters())}], cfg.lr_g)}
        # the step count the capacities follow, on the device: a graphed step advances it too
        self.step_count = torch.zeros((), dtype=torch.int64, device=device)
        # the categorical codes hold at most sum ln K nats
        self.max_cat_capacity = min(cfg.capacity_cat, sum(math.log(k) for k in spec.cat_sizes))
        self.vae_loss = self.compiled(self._vae_loss)

    def build_networks(self, norm: str) -> dict[str, torch.nn.Module]:
        self.encoder = Encoder(self.spec, self.cfg.slope, norm, self.channels, self.image_size).to(self.device)
        self.decoder = Generator(self.spec.input_dim, self.channels, logits=True,
                                 image_size=self.image_size).to(self.device)
        return {"encoder": self.encoder, "decoder": self.decoder}

    def decoder_input(self, latents: torch.Tensor, one_hots: torch.Tensor) -> torch.Tensor:
        """G's input [B, input_dim] (z, the codes' one-hots, the continuous codes) from the Gaussian
        latents [B, noise_dim + n_cont] and the relaxed one-hots [B, sum K]."""
        nd = self.spec.noise_dim
        return torch.cat([latents[:, :nd], one_hots.to(latents.dtype), latents[:, nd:]], dim=1)

    def g_forward(self, z, cat, cont):
        """Images in [-1, 1] decoded from (z, cat, cont): the decoder's mean image."""
        return torch.sigmoid(self.decoder(self.spec.g_input(z, cat, cont))) * 2 - 1

    def encode(self, x: torch.Tensor):
        """(cat_logits [B, sum K], mean [B, L], log_std [B, L]) of q(c, z | x) for images in [-1, 1]."""
        return self.encoder(x)

    def _vae_loss(self, real, eps, uniform, prior):
        """(loss, metrics) of one batch real [B, C, S, S] in [-1, 1], with the reparameterisation
        noise eps [B, L], the Gumbel noise's uniforms [B, sum K] and a prior draw (z, cat, cont)
        for the information term."""
        cfg, spec = self.cfg, self.spec
        with self.autocast():
            cat_logits, mean, log_std = self.encode(real)
            latents = mean + torch.exp(log_std) * eps
            one_hots = gumbel_softmax(cat_logits, uniform, cfg.temperature, spec.cat_sizes, cfg.straight_through)
            logits = self.decoder(self.decoder_input(latents, one_hots))
        target = (real + 1) / 2
        reconstruction = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="sum") / real.shape[0]
        kl_cat, kl_cont = losses.vae_kl(cat_logits, mean, 2 * log_std, cat_sizes=spec.cat_sizes)
        if cfg.capacity_gamma > 0:
            c_cont = capacity(self.step_count, cfg.capacity_cont, cfg.capacity_steps)
            c_cat = capacity(self.step_count, self.max_cat_capacity, cfg.capacity_steps)
            kl_term = cfg.capacity_gamma * ((kl_cont - c_cont).abs() + (kl_cat - c_cat).abs())
        else:
            kl_term = kl_cont + kl_cat
        loss = reconstruction + kl_term
        metrics = {"loss": loss.detach(), "reconstruction": reconstruction.detach(), "kl_cat": kl_cat.detach(),
                   "kl_cont": kl_cont.detach()}
        if self.use_q:
            z, cat, cont = prior
            with self.autocast():
                decoded = self.g_forward(z, cat, cont)
                q_cat, q_mean, q_log_std = self.encode(decoded)
            nd = spec.noise_dim
            loss, per_code = self.add_info_term(loss, (q_cat, q_mean[:, nd:], q_log_std[:, nd:]), cat, cont)
            metrics.update(self.info_metrics(per_code))
        return loss, metrics

    def train_step(self, reals: list[torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
        """One step on one real batch; returns detached metrics that stay on the device."""
        (real,) = reals
        n, latent_dim = real.shape[0], self.spec.noise_dim + self.spec.n_cont
        eps = torch.randn(n, latent_dim, device=self.device, generator=gen)
        uniform = torch.rand(n, sum(self.spec.cat_sizes), device=self.device, generator=gen).clamp_(min=1e-10)
        prior = self.sample_latent(n, gen) if self.use_q else None
        loss, metrics = self.vae_loss(real, eps, uniform, prior)
        self.backward_step(loss, ("VAE",))
        self.step_count += 1
        return metrics

    @torch.no_grad()
    def generate(self, z, cat, cont) -> torch.Tensor:
        """Images in [-1, 1] from the decoder in eval mode (batch-norm running statistics)."""
        with self.eval_mode(self.decoder):
            return self.g_forward(z, cat, cont)

    @torch.no_grad()
    def predict_codes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's (categorical logits [N, sum K], continuous codes' means [N, n_cont]) for
        images in [-1, 1], in eval mode: the codes follow the noise in the Gaussian latent."""
        with self.eval_mode(self.encoder):
            cat_logits, mean, _ = self.encode(images)
            return cat_logits, mean[:, self.spec.noise_dim :]

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] decoded from the posterior's means and most likely categories, in
        eval mode."""
        with self.eval_mode(self.encoder, self.decoder):
            cat_logits, mean, _ = self.encode(images)
            return torch.sigmoid(self.decoder(self.decoder_input(mean, self.most_likely(cat_logits)))) * 2 - 1

    def most_likely(self, cat_logits: torch.Tensor) -> torch.Tensor:
        """One-hots [B, sum K] of each code's most likely category under logits [B, sum K]."""
        return torch.cat([F.one_hot(part.argmax(1), part.shape[1])
                          for part in torch.split(cat_logits, list(self.spec.cat_sizes), dim=1)], dim=1)

    @torch.no_grad()
    def test_scores(self, images: torch.Tensor, gen: torch.Generator, batch_size: int = 1000) -> dict:
        """On test images uint8 [N, S, S] or [N, C, S, S], in eval mode: the negative ELBO per image (nats; one
        posterior sample, the plain KL terms) and the reconstruction's error (binary
        cross-entropy of the posterior mean's decoding, summed over pixels), each a mean."""
        total = {"test_neg_elbo": 0.0, "test_reconstruction_bce": 0.0}
        with self.eval_mode(self.encoder, self.decoder):
            for i in range(0, len(images), batch_size):
                x = data.to_model_range(data.with_channels(images[i : i + batch_size].to(self.device)))
                target = (x + 1) / 2
                cat_logits, mean, log_std = self.encode(x)
                eps = torch.randn(mean.shape, device=self.device, generator=gen)
                uniform = torch.rand(cat_logits.shape, device=self.device, generator=gen).clamp_(min=1e-10)
                one_hots = gumbel_softmax(cat_logits, uniform, self.cfg.temperature, self.spec.cat_sizes, hard=True)
                sampled = self.decoder(self.decoder_input(mean + torch.exp(log_std) * eps, one_hots))
                kl_cat, kl_cont = losses.vae_kl(cat_logits, mean, 2 * log_std, cat_sizes=self.spec.cat_sizes,
                                                reduction="sum")
                bce = F.binary_cross_entropy_with_logits(sampled.float(), target, reduction="sum")
                total["test_neg_elbo"] += (bce + kl_cat + kl_cont).item()
                mode = self.decoder(self.decoder_input(mean, self.most_likely(cat_logits)))
                total["test_reconstruction_bce"] += F.binary_cross_entropy_with_logits(
                    mode.float(), target, reduction="sum").item()
        return {k: v / len(images) for k, v in total.items()}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "step_count": self.step_count.clone()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.step_count.copy_(state["step_count"])
