"""One dataclass holds every training default; presets, a config file and the command line
override it in that order."""

import argparse
import ast
import json
import math
from dataclasses import Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import get_args

from fastinfo import registry
from fastinfo.arguments import ArgumentParser

AMP_MODES = ("none", "bf16", "fp16")
LOSS_BACKENDS = ("fused", "torch")

# The default, tuned on MNIST so that c1 becomes the digit (docs/results.md): the paper's settings
# with z drawn from U(-0.5, 0.5), where the paper leaves the prior open. Then the paper's text (Chen
# et al. 2016) as written, with z ~ N(0, I), and the original code (openai/InfoGAN).
PRESETS = {
    "tuned": dict(slope=0.1, learn_std=True, lambda_cont=0.1, noise_prior="uniform", noise_scale=0.5),
    "paper": dict(slope=0.1, learn_std=True, lambda_cont=0.1, noise_prior="normal", noise_scale=1.0),
    "openai": dict(slope=0.01, learn_std=False, lambda_cont=1.0, noise_prior="uniform", noise_scale=1.0),
}
CRITIC_NORMS = ("auto", "batch", "layer", "none")
# Each data set's latent layout where it is not MNIST's (z 62, c1 10-way, 2 continuous codes): the
# InfoGAN paper's for SVHN and CelebA (its appendix), and for dSprites a code per known factor (the
# shape 3-way, then scale, orientation, x and y) beside 5 noise dimensions, InfoGAN-CR's noise size.
# A model's own defaults (a VAE's noise size) and the command line come after.
DATASET_LATENTS = {
    "svhn": dict(noise_dim=124, cat_sizes=(10,) * 4, n_cont=4),
    "celeba": dict(noise_dim=128, cat_sizes=(10,) * 10, n_cont=0),
    "dsprites": dict(noise_dim=5, cat_sizes=(3,), n_cont=4),
}
# Fields a resumed run may change: how long and how it runs, not what it trains.
RESUMABLE_OVERRIDES = {
    "steps", "epochs", "log_every", "ckpt_every", "sample_every", "device", "data_root", "data_on", "sync_bn",
    "amp", "compile", "cuda_graphs", "tf32", "inductor", "weight_copies", "tensorboard", "progress", "eval_at_end",
    "stop_on_failure",
}


# Every float setting is held as a 32-bit float somewhere (an optimiser's kernel argument, a
# tensor): a larger magnitude would pass the range checks and overflow at the first step.
FLOAT32_MAX = 3.4028234663852886e38
# The most batches --epochs may ask for (21,000 passes over MNIST at batch 128): the step count is
# found by walking the steps, which for 1e12 epochs would take hours before the first line.
MAX_EPOCH_BATCHES = 10**7


class ConfigError(ValueError):
    """A setting that cannot work; the message says what is accepted."""


def _opt(default, help, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    model: str = _opt("infogan", "model: one of fastinfo.registry.MODELS")
    preset: str = _opt("tuned", f"hyperparameter preset: {', '.join(PRESETS)} (docs/design.md)")
    dataset: str = _opt("mnist", "data set: mnist, fashion-mnist, shapes (rendered: fastinfo.shapes), dsprites "
                                 "(64x64: DeepMind's file where a data folder holds it, else rendered; "
                                 "fastinfo.dsprites), svhn, celeba (a local copy: fastinfo.torchvision_sets) or "
                                 "folder (the images under --data-root: fastinfo.image_folder)")
    classes: str = _opt("all", 'the classes to keep: all, or e.g. "0,1,7", "0-4" (the test split keeps the same)')
    imbalance: float = _opt(1.0, "keep a share r^(i/(K-1)) of the i-th kept class's training images: the last "
                                 "class keeps r (1: all, as published)")
    data_root: str | None = _opt(None, "folder holding the data set's files: the IDX files, dSprites' .npz, SVHN's "
                                       ".mat files, CelebA's celeba/ folder (else $FASTINFO_DATA, cache, ...), or "
                                       "the images of --dataset folder")
    image_size: int = _opt(0, "the side of the images the networks take, the data set's images resized to it: 28 "
                              "(the InfoGAN paper's MNIST networks), 32 (its SVHN and CelebA ones) or 64 (InfoGAN-CR's "
                              "dSprites ones); 0: the data set's own")
    steps: int | None = _opt(None, "generator steps to train (overrides --epochs)")
    epochs: float = _opt(
        10.0, "passes over the training set when --steps is not given (each WGAN critic step takes a batch)")
    batch_size: int = _opt(128, "batch size (the original code's 128; the paper does not say)")
    lr_d: float = _opt(2e-4, "learning rate of D (InfoGAN: Adam 2e-4; WGAN: RMSprop 5e-5; WGAN-GP: Adam 1e-4)")
    lr_g: float = _opt(1e-3, "learning rate of G (InfoGAN: 1e-3; WGAN: 5e-5; WGAN-GP: 1e-4)")
    lr_q: float = _opt(2e-4, "Adam learning rate of the Q head (WGAN models) or of MINE's T (minegan)")
    beta1: float = _opt(0.5, "Adam beta1 (WGAN-GP: 0.5)")
    beta2: float = _opt(0.999, "Adam beta2 (WGAN-GP: 0.9)")
    n_critic: int = _opt(5, "critic steps per generator step (WGAN models)")
    wgan_schedule: bool = _opt(False, "WGAN's schedule: 100 critic steps for the first 25 and every 500th G step")
    clip: float = _opt(0.01, "critic weight clipping value (wgan, infowgan)")
    gp_weight: float = _opt(10.0, "gradient-penalty weight (wgan-gp, infowgan-gp)")
    beta: float = _opt(1.0, "weight of the MINE estimate in G's loss (minegan)")
    mine_codes: str = _opt("cont", "codes MINE-GAN's statistics network sees: cont or all (one-hot categorical too)")
    mine_ema: float = _opt(0.01, "moving-average rate of MINE's bias correction (minegan)")
    adaptive_clip: bool = _opt(True, "MINE's adaptive gradient clipping of the MI gradient on G (minegan)")
    temperature: float = _opt(0.67, "Gumbel-softmax temperature of the categorical codes (vae, infovae; "
                                     "JointVAE's 0.67)")
    straight_through: bool = _opt(False, "vae, infovae: one-hot categorical samples forward, the relaxed sample's "
                                         "gradient backward")
    capacity_gamma: float = _opt(30.0, "vae, infovae: JointVAE's capacity control, gamma * |KL - C(t)| per kind of "
                                       "latent (0: the plain KL terms)")
    capacity_cont: float = _opt(5.0, "vae, infovae: the Gaussian latents' capacity C rises to this many nats")
    capacity_cat: float = _opt(5.0, "vae, infovae: the categorical codes' capacity rises to this (at most the sum "
                                    "of their ln K)")
    capacity_steps: int = _opt(25000, "vae, infovae: steps over which each capacity rises linearly from 0")
    critic_norm: str = _opt("auto", "critic normalisation: auto (batch; layer for -gp), batch, layer, none")
    lambda_cat: float = _opt(1.0, "weight of L_I for categorical codes")
    lambda_cont: float = _opt(0.1, "weight of L_I for continuous codes (preset-dependent)")
    lambda_real: float = _opt(0.0, "infogan: weight of Q's mutual information between the real batch and its "
                                   "categorical codes, H(mean q) - mean H(q), maximised in D/Q's step (0: off, as "
                                   "the paper)")
    noise_dim: int = _opt(62, "size of the noise vector z")
    cat_sizes: tuple[int, ...] = _opt((10,), "categories per categorical code, comma-separated")
    n_cont: int = _opt(2, "number of continuous codes, each ~ U(-1, 1)")
    noise_prior: str = _opt("uniform", "prior of z: normal or uniform (preset-dependent)")
    noise_scale: float = _opt(0.5, "z is drawn from its prior times this (below 1 the codes weigh more in G's input; "
                                   "preset-dependent)")
    slope: float = _opt(0.1, "leaky-ReLU slope in D and Q (preset-dependent)")
    learn_std: bool = _opt(True, "Q predicts a log-std per continuous code (preset-dependent)")
    loss_backend: str = _opt("fused", "info_nll backend: fused (Triton where available) or torch")
    seed: int = _opt(0, "random seed, 0..4294967295")
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N")
    data_on: str = _opt("auto", "where the training set is held: device, host (batches copied from pinned host memory, "
                                "for a set the GPU cannot hold) or auto (the device when the set takes at most half "
                                "its free memory)")
    sync_bn: bool = _opt(False, "over several processes (torchrun): batch norm's statistics over the global batch, "
                                "not each process's share (SyncBatchNorm; GPUs only)")
    out: str | None = _opt(None, "run folder (default runs/<model>-<dataset>-s<seed>)")
    amp: str = _opt("none", "mixed precision: none, bf16 or fp16 (--amp alone means bf16)")
    compile: bool = _opt(False, "torch.compile the networks")
    inductor: str = _opt("", "TorchInductor options for --compile, comma-separated name=value "
                             "(e.g. combo_kernels=True,split_reductions=False)")
    weight_copies: bool = _opt(False, "with --amp bf16: convolutions and linear layers use bf16 copies of their "
                                      "weights, which the optimisers write with each update: autocast's numbers "
                                      "without its weight casts")
    cuda_graphs: bool = _opt(False, "capture the whole training step in a CUDA graph and replay it (GPU only)")
    tf32: bool = _opt(True, "on a GPU, fp32 matrix products on TF32 tensor cores, as PyTorch already runs "
                            "convolutions (--no-tf32: full fp32 products)")
    joint_d: bool = _opt(True, "one D forward over real and fake, batch norm taking each half's own statistics "
                               "(-gp models: with the penalty's points too; --no-joint-d: separate forwards)")
    log_every: int = _opt(50, "read metrics from the device and log every N steps")
    ckpt_every: int = _opt(500, "write a checkpoint every N steps")
    sample_every: int = _opt(1000, "write traversal grids every N steps (0: only at the end)")
    stop_on_failure: bool = _opt(False, "end a run whose D(G(z)) stays below 0.1 early on (exit code 4; "
                                        "fastinfo.failure): it has failed and will not recover")
    eval_at_end: bool = _opt(True, "report c1 clustering accuracy on the test set at the end")
    tensorboard: bool = _opt(False, "also log to TensorBoard (needs the tensorboard extra)")
    progress: bool = _opt(True, "show a progress bar")

    def total_steps(self, n_train: int, batches_per_step=lambda step: 1) -> int:
        """--steps, or the generator steps whose real batches (batches_per_step(i) for step i: a
        WGAN's n_critic) make --epochs passes over the n_train training images."""
        if self.steps is not None:
            return self.steps
        batches = max(1, round(self.epochs * (n_train // self.batch_size)))
        if batches > MAX_EPOCH_BATCHES:
            raise ConfigError(f"--epochs {self.epochs:g} asks for {batches:.3g} batches of {self.batch_size} "
                              f"images; at most {MAX_EPOCH_BATCHES:.0e} (or give --steps)")
        steps = 0
        while batches > 0:
            batches -= batches_per_step(steps)
            steps += 1
        return steps

    def run_dir(self) -> Path:
        # expanduser: a config file's "~/runs/a" reaches here as written, not through a shell
        return Path(self.out or f"runs/{self.model}-{self.dataset}-s{self.seed}").expanduser()

    def unused_settings(self) -> list[str]:
        """The settings changed from the model's and preset's defaults that the model does not read."""
        defaults = model_defaults(self.model, self.preset, self.dataset)
        return [name for name in registry.MODEL_SPECIFIC
                if name not in registry.entry(self.model).reads and getattr(self, name) != defaults[name]]

    def inductor_options(self) -> dict:
        """--inductor as {name: value}; ConfigError for an option TorchInductor does not have or a
        value of another type than its default's."""
        if not self.inductor.strip():
            return {}
        from torch._inductor import config as inductor_config

        defaults, options = inductor_config.get_config_copy(), {}
        for item in self.inductor.split(","):
            name, sep, text = (part.strip() for part in item.partition("="))
            if not sep or not name:
                raise ConfigError(f"--inductor takes name=value pairs separated by commas, got {item!r}")
            if name not in defaults:
                raise ConfigError(f"--inductor: TorchInductor has no option {name!r} "
                                  "(torch._inductor.list_options() lists them)")
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text  # a bare word: a string option's value
            default = defaults[name]
            if isinstance(default, bool) and value in (0, 1):
                value = bool(value)
            fits = isinstance(value, type(default)) or (type(default) is float and type(value) is int)
            if default is not None and not fits:
                raise ConfigError(f"--inductor {name}: expected {type(default).__name__} (its default is "
                                  f"{default!r}), got {text!r}")
            options[name] = value
        return options

    def validate(self) -> "TrainConfig":
        def need(ok, msg):
            if not ok:
                raise ConfigError(msg)

        from fastinfo.data import DATA_PLACEMENTS, DATASET_NAMES, FOLDER_NEEDS_ROOT, DataError, labelled, parse_classes

        need(self.model in registry.MODELS,
             f"unknown model {self.model!r}; accepted: {', '.join(registry.names())}")
        model = registry.entry(self.model)
        need(self.preset in PRESETS, f"unknown preset {self.preset!r}; accepted: {', '.join(PRESETS)}")
        need(self.dataset in DATASET_NAMES,
             f"unknown dataset {self.dataset!r}; accepted: {', '.join(DATASET_NAMES)}")
        try:
            parse_classes(self.classes, self.dataset)
        except DataError as e:
            raise ConfigError(str(e)) from None
        from fastinfo.nets import IMAGE_SIZES

        need(self.image_size in (0, *IMAGE_SIZES), f"--image-size must be one of {', '.join(map(str, IMAGE_SIZES))} "
             f"(the sides that have networks) or 0 (the data set's own), got {self.image_size}")
        need(0 < self.imbalance <= 1, f"--imbalance must be in (0, 1] (the last class's share), got {self.imbalance}")
        need(self.imbalance == 1 or labelled(self.dataset),
             f"--imbalance weighs classes, and {self.dataset} has none; leave it at 1")
        need(self.dataset != "folder" or self.data_root, FOLDER_NEEDS_ROOT)
        need(self.amp in AMP_MODES, f"unknown --amp {self.amp!r}; accepted: {', '.join(AMP_MODES)}")
        need(self.data_on in DATA_PLACEMENTS,
             f"unknown --data-on {self.data_on!r}; accepted: {', '.join(DATA_PLACEMENTS)}")
        need(self.loss_backend in LOSS_BACKENDS,
             f"unknown loss backend {self.loss_backend!r}; accepted: {', '.join(LOSS_BACKENDS)}")
        need(self.noise_prior in ("normal", "uniform"), "noise_prior must be normal or uniform")
        need(self.noise_scale > 0, f"--noise-scale must be positive, got {self.noise_scale}")
        need(self.temperature > 0, f"--temperature must be positive, got {self.temperature}")
        need(self.capacity_gamma >= 0 and self.capacity_cont >= 0 and self.capacity_cat >= 0,
             "--capacity-gamma, --capacity-cont and --capacity-cat must be >= 0")
        need(self.lambda_real >= 0, f"--lambda-real must be >= 0, got {self.lambda_real}")
        need(self.capacity_steps >= 1, f"--capacity-steps must be >= 1, got {self.capacity_steps}")
        for f in fields(self):
            value = getattr(self, f.name)
            need(not isinstance(value, float) or abs(value) <= FLOAT32_MAX,
                 f"--{f.name.replace('_', '-')} must be a finite number of at most {FLOAT32_MAX:.4g} in size "
                 f"(it is held as a 32-bit float), got {value}")
        need(self.steps is None or self.steps > 0, f"--steps must be positive, got {self.steps}")
        need(self.epochs > 0, f"--epochs must be positive, got {self.epochs}")
        need(0 <= self.seed < 2**32, f"--seed must be in 0..{2**32 - 1}, got {self.seed}")
        need(2 <= self.batch_size <= 60000,
             f"--batch-size must be in 2..60000 (batch norm needs two samples), got {self.batch_size}")
        need(self.noise_dim >= 0 and self.n_cont >= 0, "--noise-dim and --n-cont must be >= 0")
        need(self.noise_dim + sum(self.cat_sizes) + self.n_cont > 0,
             "G's input is empty: give --noise-dim, --cat-sizes or --n-cont")
        need(all(k >= 2 for k in self.cat_sizes), f"--cat-sizes need >= 2 categories each, got {self.cat_sizes}")
        need(model.family != "vae" or self.cat_sizes,
             f"--model {self.model} needs a categorical code: give --cat-sizes (e.g. 10)")
        need(not model.q_head or self.cat_sizes or self.n_cont,
             f"{self.model} needs at least one latent code (--cat-sizes or --n-cont)")
        for name in ("lr_d", "lr_g"):
            need(getattr(self, name) > 0, f"--{name.replace('_', '-')} must be positive")
        need(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "Adam betas must be in [0, 1)")
        need(self.lambda_cat >= 0 and self.lambda_cont >= 0, "--lambda-cat/--lambda-cont must be >= 0")
        need(0 <= self.slope < 1, f"--slope must be in [0, 1), got {self.slope}")
        need(self.n_critic >= 1, f"--n-critic must be >= 1, got {self.n_critic}")
        need(self.clip > 0 and math.isfinite(self.clip), f"--clip must be positive, got {self.clip}")
        need(self.gp_weight >= 0, f"--gp-weight must be >= 0, got {self.gp_weight}")
        need(self.lr_q > 0, "--lr-q must be positive")
        need(self.beta >= 0, f"--beta must be >= 0, got {self.beta}")
        need(self.mine_codes in ("cont", "all"), f"unknown --mine-codes {self.mine_codes!r}; accepted: cont, all")
        need(0 < self.mine_ema <= 1, f"--mine-ema must be in (0, 1], got {self.mine_ema}")
        need(self.model != "minegan" or self.n_cont > 0 or (self.mine_codes == "all" and self.cat_sizes),
             "minegan needs continuous codes (--n-cont) or --mine-codes all with a categorical code")
        need(self.critic_norm in CRITIC_NORMS,
             f"unknown --critic-norm {self.critic_norm!r}; accepted: {', '.join(CRITIC_NORMS)}")
        need(not (model.critic == "gp" and self.critic_norm == "batch"),
             "the gradient penalty is per sample: use --critic-norm layer or none with -gp models")
        need(not (self.cuda_graphs and self.amp == "fp16"),
             "--cuda-graphs works with --amp bf16 or none, not fp16: fp16's loss scaler must check for "
             "overflow between the D and G updates, outside any graph")
        need(not (self.cuda_graphs and self.device == "cpu"), "--cuda-graphs needs a CUDA device, not --device cpu")
        need(not self.weight_copies or self.amp == "bf16",
             f"--weight-copies keeps bf16 copies of the weights for --amp bf16, got --amp {self.amp}")
        need(not self.inductor or self.compile, "--inductor sets options of --compile: pass --compile too")
        self.inductor_options()
        for name in ("log_every", "ckpt_every"):
            need(getattr(self, name) > 0, f"--{name.replace('_', '-')} must be positive")
        need(self.sample_every >= 0, "--sample-every must be >= 0")
        need(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
             f"unknown --device {self.device!r}; accepted: auto, cpu, cuda, cuda:N")
        return self


def _parse_sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(k) for k in text.split(",") if k.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m fastinfo.train",
        description="Train InfoGAN or a vanilla GAN baseline on MNIST / Fashion-MNIST.",
        argument_default=argparse.SUPPRESS,  # only what the user typed overrides the config
    )
    p.add_argument("--config", help="JSON file, or YAML if named .yaml or .yml, with any of the fields below")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        help = f"{f.metadata['help']} (default: {f.default})"
        if f.name == "model":
            help = f"model: {', '.join(registry.names())} (default: {f.default})"
        if f.name == "amp":
            p.add_argument(flag, nargs="?", const="bf16", choices=AMP_MODES, help=help)
        elif f.type is bool or f.type == "bool":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, help=help)
        elif f.name == "cat_sizes":
            p.add_argument(flag, type=_parse_sizes, help=help)
        else:
            kind = {int: int, float: float}.get(type(f.default), str)
            if f.name == "steps":
                kind = int
            p.add_argument(flag, type=kind, help=help)
    return p


def not_a_run(folder: Path) -> str | None:
    """Why folder is not a run folder (it has no config.json), naming the runs it holds, if any;
    None for a run folder."""
    if (folder / "config.json").is_file():
        return None
    inside = sorted(str(c.parent) for c in folder.glob("*/config.json"))
    shown = ", ".join(inside[:4]) + (f" and {len(inside) - 4} more" if len(inside) > 4 else "")
    return f"{folder} holds no run (no config.json)" + (f"; the runs in it: {shown}" if inside else "")


def read_saved(path: Path) -> dict:
    """The JSON object a run saved at path (config.json, eval.json); ConfigError when it is
    unreadable or holds something else."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is unreadable or corrupt: {e}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} is corrupt: it holds a {type(value).__name__}, not a JSON object")
    return value


def read_config_file(path: str) -> dict:
    """The settings in a JSON file, or a YAML one where its name ends in .yaml or .yml."""
    is_yaml = path.endswith((".yaml", ".yml"))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read --config {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--config {path} is not a UTF-8 text file; it must hold {'YAML' if is_yaml else 'JSON'}") \
            from None
    data = _parse_yaml(path, text) if is_yaml else _parse_json(path, text)
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a mapping of field names to values")
    return data


def _parse_json(path: str, text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--config {path} is not valid JSON: {e} (a file whose name ends in .yaml or .yml is "
                          f"read as YAML)") from None


def _parse_yaml(path: str, text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"--config {path} is not valid YAML: {problem}{where}") from None


def _typed(f: Field, value):
    """value as field f's type. A config file's values arrive as JSON or YAML typed them, and one of
    another type would pass the range checks or fail them with a TypeError: "no" is a true
    learn_std, "64" no batch size."""
    def wrong(accepted):
        return ConfigError(f"{f.name} (--{f.name.replace('_', '-')}) must be {accepted}, got {value!r}")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    kinds = get_args(f.type) or (f.type,)
    if value is None and type(None) in kinds:
        return None
    if f.name == "cat_sizes":
        sizes = (value,) if is_int(value) else value
        if isinstance(value, str):
            try:
                sizes = _parse_sizes(value)
            except argparse.ArgumentTypeError:
                sizes = None
        if not isinstance(sizes, (list, tuple)) or not all(is_int(k) for k in sizes):
            raise wrong("a list of integers (or comma-separated integers)")
        return tuple(sizes)
    kind = next(k for k in kinds if k is not type(None))
    if kind is bool and isinstance(value, bool) or kind is str and isinstance(value, str):
        return value
    if kind is int and (is_int(value) or isinstance(value, float) and value.is_integer()):
        return int(value)
    if kind is float and (is_int(value) or isinstance(value, float)):
        if not math.isfinite(value):
            raise wrong("a finite number")
        return float(value)
    raise wrong({bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]
                + (" or null" if type(None) in kinds else ""))


def make_config(values: dict) -> TrainConfig:
    """defaults <- preset <- values; unknown names and values of the wrong type are an error."""
    known = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown config field(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}")
    values = {name: _typed(known[name], value) for name, value in values.items()}
    preset = values.get("preset", TrainConfig.preset)
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; accepted: {', '.join(PRESETS)}")
    return TrainConfig(**{**model_defaults(values.get("model"), preset, values.get("dataset")), **values}).validate()


def model_defaults(model: str | None, preset: str, dataset: str | None = None) -> dict:
    """Every field's default for this model, preset and data set."""
    own = registry.entry(model).defaults if model in registry.MODELS else {}
    return {**asdict(TrainConfig()), **DATASET_LATENTS.get(dataset, {}), **own, **PRESETS[preset]}


def parse_args(argv=None) -> tuple[dict, str | None]:
    """The user's explicit settings (config file merged under the command line) and --resume."""
    args = vars(build_parser().parse_args(argv))
    resume = args.pop("resume", None)
    values = read_config_file(args.pop("config")) if "config" in args else {}
    values.update(args)
    return values, resume
