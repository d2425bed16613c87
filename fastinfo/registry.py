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
Q_SETTINGS = ("lambda_cat", "lambda_cont", "learn_std", "loss_backend")
MINE_SETTINGS = ("beta", "mine_codes", "mine_ema", "adaptive_clip")
ADAM_BETAS = ("beta1", "beta2")
MODEL_SPECIFIC = (*WGAN_SETTINGS, "clip", "gp_weight", *MINE_SETTINGS, *Q_SETTINGS, "lr_q", *ADAM_BETAS)

# The WGAN paper's RMSprop at 5e-5; WGAN-GP's Adam at 1e-4 with betas (0.5, 0.9)
CLIPPED_CRITIC_DEFAULTS = dict(lr_d=5e-5, lr_g=5e-5)
PENALTY_CRITIC_DEFAULTS = dict(lr_d=1e-4, lr_g=1e-4, beta1=0.5, beta2=0.9)


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
    """

    cls: str
    q_head: bool
    critic: str | None = None
    defaults: dict = field(default_factory=dict)
    reads: tuple[str, ...] = ()

    def model_class(self) -> type:
        module, name = self.cls.split(":")
        return getattr(importlib.import_module(module), name)


MODELS: dict[str, ModelEntry] = {
    "gan": ModelEntry("fastinfo.infogan:InfoGAN", q_head=False, reads=ADAM_BETAS),
    "infogan": ModelEntry("fastinfo.infogan:InfoGAN", q_head=True, reads=(*Q_SETTINGS, *ADAM_BETAS)),
    "wgan": ModelEntry("fastinfo.wgan:InfoWGAN", q_head=False, critic="clip", defaults=CLIPPED_CRITIC_DEFAULTS,
                       reads=(*WGAN_SETTINGS, "clip")),
    "infowgan": ModelEntry("fastinfo.wgan:InfoWGAN", q_head=True, critic="clip", defaults=CLIPPED_CRITIC_DEFAULTS,
                           reads=(*WGAN_SETTINGS, "clip", *Q_SETTINGS, "lr_q")),
    "wgan-gp": ModelEntry("fastinfo.wgan:InfoWGAN", q_head=False, critic="gp", defaults=PENALTY_CRITIC_DEFAULTS,
                          reads=(*WGAN_SETTINGS, "gp_weight", *ADAM_BETAS)),
    # (the Q head of infowgan-gp keeps InfoGAN's betas; its critic takes WGAN-GP's)
    "infowgan-gp": ModelEntry("fastinfo.wgan:InfoWGAN", q_head=True, critic="gp", defaults=PENALTY_CRITIC_DEFAULTS,
                              reads=(*WGAN_SETTINGS, "gp_weight", *Q_SETTINGS, "lr_q", *ADAM_BETAS)),
    "minegan": ModelEntry("fastinfo.minegan:MineGAN", q_head=False, reads=(*MINE_SETTINGS, "lr_q", *ADAM_BETAS)),
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
