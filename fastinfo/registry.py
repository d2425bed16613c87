"""Every model fastinfo trains, one entry each: the class that trains it and what it is.

The command line's choices, the defaults a model brings, the settings it reads and the names
the sweep and the report accept all come from MODELS. A new model is a class (an InfoModel
subclass, in a file of its own) and one entry here.
"""

import importlib
from dataclasses import dataclass, field

# Settings only some models read (every other setting, every model reads), in the order a
# warning lists them.
WGAN_SETTINGS = ("n_critic", "wgan_schedule", "critic_norm")
INFO_SETTINGS = ("lambda_cat", "lambda_cont", "loss_backend")
Q_SETTINGS = (*INFO_SETTINGS, "learn_std")
MINE_SETTINGS = ("beta", "mine_codes", "mine_ema", "adaptive_clip")
ADAM_BETAS = ("beta1", "beta2")
# how a GAN draws z (a VAE's prior is N(0, I))
NOISE_SETTINGS = ("noise_prior", "noise_scale")
VAE_SETTINGS = ("temperature", "straight_through", "capacity_gamma", "capacity_cont", "capacity_cat",
                "capacity_steps")
MODEL_SPECIFIC = (*WGAN_SETTINGS, "clip", "gp_weight", *MINE_SETTINGS, *Q_SETTINGS, "lr_q", *ADAM_BETAS,
                  *NOISE_SETTINGS, *VAE_SETTINGS, "lambda_real")

# The WGAN paper's RMSprop at 5e-5; WGAN-GP's Adam at 1e-4 with betas (0.5, 0.9)
CLIPPED_CRITIC_DEFAULTS = dict(lr_d=5e-5, lr_g=5e-5)
PENALTY_CRITIC_DEFAULTS = dict(lr_d=1e-4, lr_g=1e-4, beta1=0.5, beta2=0.9)
# JointVAE's MNIST settings: Adam at 5e-4 with PyTorch's betas, batch 64, ten Gaussian latents
# (here 8 latents of noise and the 2 continuous codes) beside the 10-way code
VAE_DEFAULTS = dict(lr_d=5e-4, lr_g=5e-4, beta1=0.9, beta2=0.999, batch_size=64, noise_dim=8)


@dataclass(frozen=True)
class ModelEntry:
    """What a model is.

    Attributes:
        cls: "module:Class" of the InfoModel subclass that trains it (imported when it is built).
        q_head: whether D carries a Q head trained with L_I (InfoGAN's mutual-information term).
        critic: None for a GAN discriminator, "clip" for a WGAN critic with clipped weights,
            "gp" for one with a gradient penalty.
        defaults: its own defaults over TrainConfig's (the presets still override them).
        reads: the settings of MODEL_SPECIFIC it reads.
        family: "gan", or "vae" for a model whose continuous latents have the prior N(0, 1).
    """

    cls: str
    q_head: bool
    critic: str | None = None
    defaults: dict = field(default_factory=dict)
    reads: tuple[str, ...] = ()
    family: str = "gan"

    @property
    def infers_codes(self) -> bool:
        """Whether the model reads codes back from images: Q's head, or a VAE's encoder."""
        return self.q_head or self.family == "vae"

    def model_class(self) -> type:
        module, name = self.cls.split(":")
        return getattr(importlib.import_module(module), name)


MODELS: dict[str, ModelEntry] = {
    "gan": ModelEntry("fastinfo.infogan:InfoGAN", q_head=False, reads=(*NOISE_SETTINGS, *ADAM_BETAS)),
    "infogan": ModelEntry("fastinfo.infogan:InfoGAN", q_head=True,
                          reads=(*NOISE_SETTINGS, *Q_SETTINGS, *ADAM_BETAS, "lambda_real")),
    "wgan": ModelEntry("fastinfo.wgan:InfoWGAN", q_head=False, critic="clip", defaults=CLIPPED_CRITIC_DEFAULTS,
                       reads=(*NOISE_SETTINGS, *WGAN_SETTINGS, "clip")),
    "infowgan": ModelEntry("fastinfo.wgan:InfoWGAN", q_head=True, critic="clip", defaults=CLIPPED_CRITIC_DEFAULTS,
                           reads=(*NOISE_SETTINGS, *WGAN_SETTINGS, "clip", *Q_SETTINGS, "lr_q")),
    "wgan-gp": ModelEntry("fastinfo.wgan:InfoWGAN", q_head=False, critic="gp", defaults=PENALTY_CRITIC_DEFAULTS,
                          reads=(*NOISE_SETTINGS, *WGAN_SETTINGS, "gp_weight", *ADAM_BETAS)),
    # (the Q head of infowgan-gp keeps InfoGAN's betas; its critic takes WGAN-GP's)
    "infowgan-gp": ModelEntry("fastinfo.wgan:InfoWGAN", q_head=True, critic="gp", defaults=PENALTY_CRITIC_DEFAULTS,
                              reads=(*NOISE_SETTINGS, *WGAN_SETTINGS, "gp_weight", *Q_SETTINGS, "lr_q", *ADAM_BETAS)),
    "minegan": ModelEntry("fastinfo.minegan:MineGAN", q_head=False,
                          reads=(*NOISE_SETTINGS, *MINE_SETTINGS, "lr_q", *ADAM_BETAS)),
    # the VAE and the information-regularised VAE: encoder q(c|x) q(z|x), decoder p(x|z, c)
    "vae": ModelEntry("fastinfo.vae:InfoVAE", q_head=False, defaults=VAE_DEFAULTS, reads=(*VAE_SETTINGS, *ADAM_BETAS),
                      family="vae"),
    "infovae": ModelEntry("fastinfo.vae:InfoVAE", q_head=True, defaults=VAE_DEFAULTS,
                          reads=(*VAE_SETTINGS, *INFO_SETTINGS, *ADAM_BETAS), family="vae"),
}


def names() -> tuple[str, ...]:
    """The models' names, in the registry's order."""
    return tuple(MODELS)


def entry(name: str) -> ModelEntry:
    """The entry of the model called name (KeyError for an unknown one)."""
    return MODELS[name]


def readers(setting: str) -> tuple[str, ...]:
    """The models that read a model-specific setting."""
    return tuple(name for name, e in MODELS.items() if setting in e.reads)
