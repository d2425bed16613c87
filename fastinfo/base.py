"""What every GAN-family model here shares: G, D with its Q head, the L_I term, AMP, state."""

import contextlib

import torch

from fastinfo import data, distributed, losses, registry
from fastinfo.codes import LatentSpec
from fastinfo.config import TrainConfig
from fastinfo.losses import reference
from fastinfo.nets import Discriminator, Generator
from fastinfo.optim import Adam, ClippedRMSprop
from fastinfo.weight_copies import WeightCopies


class InfoModel:
    """Subclasses build self.optimizers and define train_step(reals, gen) -> device metrics: one
    training step on batches_per_step(index) real batches, with no host sync, safe to capture in
    a CUDA graph. Its networks come from build_networks (G and D with its Q head, unless it says
    otherwise); one it adds besides them goes to self.copies (when set) before it builds its
    optimisers."""

    def __init__(self, cfg: TrainConfig, spec: LatentSpec, device: torch.device, norm: str = "batch"):
        self.cfg, self.spec, self.device = cfg, spec, device
        self.image_size = data.image_size(cfg)  # the networks' side
        self.channels = data.channels(cfg)  # and their images' channels
        self.use_q = registry.entry(cfg.model).q_head
        # whether predict_codes means anything: Q's categorical head, or a VAE's encoder
        self.infers_codes = self.use_q
        self.networks = self.build_networks(norm)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.copies = WeightCopies() if cfg.weight_copies else None
        if self.copies:
            self.copies.add(*self.networks.values())
        # bf16 has fp32's range and needs no loss scaling; fp16 does
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
        # G's layers in the layout autograd gives them: with inductor's channels-last layout its
        # transposed convolutions' compiled backward fails on a GPU in fp32, where cuDNN returns
        # another layout than inductor predicts (pytorch/pytorch#171622)
        self.g_fwd = self.compiled(self.g_forward, layout_optimization=False)
        self.gan_d_loss, self.gan_g_loss = self.compiled(self._gan_d_loss), self.compiled(self._gan_g_loss)
        self.entropy = spec.entropy().to(device)
        # d loss / d loss, kept: a backward call without it fills a fresh ones tensor, one kernel
        self.grad_seed = torch.ones((), device=device)

    def build_networks(self, norm: str) -> dict[str, torch.nn.Module]:
        """The networks by their names in a checkpoint: G and D (with its Q head)."""
        self.G = Generator(self.spec.input_dim, self.channels, image_size=self.image_size).to(self.device)
        self.D = Discriminator(self.spec, self.cfg.slope, self.cfg.learn_std, norm=norm, channels=self.channels,
                               image_size=self.image_size).to(self.device)
        return {"G": self.G, "D": self.D}

    def compiled(self, fn, **inductor_options):
        """fn compiled under --compile, with static shapes: a step has a few fixed ones (B, and 2B
        with --joint-d), and shape-specialised kernels are the faster ones. G is compiled on its
        own (its output feeds both D's and G's step); each D forward is compiled together with
        its loss and metrics, so one graph fuses them with D's last layers (with --no-joint-d it
        also sums the gradients of D's two calls, real and fake, in its backward)."""
        if not self.cfg.compile:
            return fn
        losses.tag_compile_cache()
        options = {**self.cfg.inductor_options(), **inductor_options}
        return torch.compile(fn, dynamic=False, options=options or None)

    def adam(self, params, lr: float, betas: tuple[float, float] | None = None) -> torch.optim.Adam:
        """Adam, fused into one kernel on a GPU; capturable (state on the device) for --cuda-graphs.
        With --weight-copies, fastinfo.optim.Adam, which also writes the copies."""
        betas = betas or (self.cfg.beta1, self.cfg.beta2)
        if self.copies:
            return Adam(params, lr=lr, betas=betas, copies=self.copies.of, capturable=self.cfg.cuda_graphs)
        cuda = self.device.type == "cuda"
        return torch.optim.Adam(params, lr=lr, betas=betas, fused=cuda or None, capturable=self.cfg.cuda_graphs)

    def rmsprop(self, params, lr: float, clip_value: float | None = None) -> ClippedRMSprop:
        """RMSprop, clamping the parameters to [-clip_value, clip_value] after each update when
        clip_value is given: one fused launch on a GPU, where torch.optim.RMSprop's multi-tensor
        path and a clip make seven and move three times the bytes. Keeps no step count, so it is
        capturable as it is."""
        return ClippedRMSprop(params, lr=lr, clip_value=clip_value, copies=self.copies.of if self.copies else None)

    def step(self, reals: list[torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
        """One training step (train_step), with --weight-copies on the weights' bf16 copies."""
        with self.copies.in_layers() if self.copies else contextlib.nullcontext():
            return self.train_step(reals, gen)

    def batches_per_step(self, step: int) -> int:
        """Real batches the training step with this 0-based index consumes."""
        return 1

    def d_real_fake(self, real: torch.Tensor, fake: torch.Tensor, with_q: bool, q_real: bool = False):
        """D on a real and a fake batch, and Q on the fake one (with q_real, on both).

        Args:
            real: [B, C, S, S] images in [-1, 1].
            fake: [B', C, S, S] G's images.
            with_q: whether Q's outputs are wanted.
            q_real: Q's outputs on the real rows too, before the fake ones ([B + B', ...]).

        Returns:
            (D's logits on real [B, 1], on fake [B', 1], Q's outputs on fake: categorical logits
            [B', sum K], mean [B', n_cont], log-std [B', n_cont] or None; or None without Q).

        With --joint-d (the default) one D forward takes both halves: one convolution or matrix
        product per layer instead of two, no sum of two gradients per parameter, and the method of
        two forwards, since batch norm normalises each half with its own statistics."""
        if self.cfg.joint_d:
            n = real.shape[0]
            # in fake's dtype: under autocast D's first convolution casts its input to it anyway
            d, q = self.D(torch.cat([real.to(fake.dtype), fake]), with_q=with_q, split=n, q_all=q_real)
            # fp32 logits for the losses: one cast for both halves (the callers' .float() is then free)
            return *d.float().split([n, fake.shape[0]]), q
        d_real, q_on_real = self.D(real, with_q=with_q and q_real)
        d_fake, q = self.D(fake, with_q=with_q)
        if q_on_real is not None:
            q = tuple(torch.cat(pair) for pair in zip(q_on_real, q))
        return d_real, d_fake, q

    def _gan_d_loss(self, real, fake, cat, cont):
        """(D's loss -E[log D(x)] - E[log(1 - D(G(z)))], with a Q head plus lambda * NLL and,
        with --lambda-real, minus lambda_real times Q's information on the real batch, [];
        mean D(x), []) on a real batch [B, C, S, S] and a detached fake one, with the codes G
        was given (cat [B, n_cat] int64, cont [B, n_cont])."""
        real_term = self.use_q and self.spec.n_cat > 0 and self.cfg.lambda_real > 0
        with self.autocast():
            d_real, d_fake, q = self.d_real_fake(real, fake, with_q=self.use_q, q_real=real_term)
            loss = losses.gan_d_loss(d_real.float(), d_fake.float())
            if real_term:
                n = real.shape[0]
                information = losses.categorical_information(q[0][:n], self.spec.cat_sizes)
                loss = loss - self.cfg.lambda_real * information.sum()
                q = tuple(t[n:] for t in q)
            loss, _ = self.add_info_term(loss, q, cat, cont)
        return loss, torch.sigmoid(d_real.detach().float()).mean()

    def _gan_g_loss(self, fake, cat, cont):
        """(G's non-saturating loss -E[log D(G(z))], with a Q head plus lambda * NLL, []; mean
        D(G(z)), []; per-code NLL [n_codes] or None) on fake [B, C, S, S] and its codes.
        Run it with D frozen."""
        with self.autocast():
            d_fake, q = self.D(fake, with_q=self.use_q)
            d_fake = d_fake.float()  # once, for the loss and the metric
            loss, per_code = self.add_info_term(losses.gan_g_loss(d_fake), q, cat, cont)
        return loss, torch.sigmoid(d_fake.detach()).mean(), per_code

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def sample_latent(self, batch_size: int, gen: torch.Generator):
        """(noise, categorical codes, continuous codes) drawn from the prior."""
        return self.spec.sample(batch_size, self.device, gen)

    def g_forward(self, z: torch.Tensor, cat: torch.Tensor, cont: torch.Tensor) -> torch.Tensor:
        """G's images from noise and codes. Compiled as one function under --compile, so that
        the codes' one-hot vectors and G's input are built inside its first kernels, not by
        four kernels of their own."""
        return self.G(self.spec.g_input(z, cat, cont))

    def info_nll(self, q, cat, cont):
        """(lambda-weighted mean NLL [], per-code NLL [n_codes]) of the codes (cat [B, n_cat]
        int64, cont [B, n_cont]) under Q's outputs q (logits [B, sum K], mean and log-std
        [B, n_cont])."""
        cat_logits, mean, log_std = q
        has_cat, has_cont = self.spec.n_cat > 0, self.spec.n_cont > 0
        args = (
            cat_logits if has_cat else None, cat if has_cat else None,
            mean if has_cont else None, cont if has_cont else None,
            log_std if has_cont else None,
        )
        fn = reference.info_nll_and_per_code if self.cfg.loss_backend == "torch" else losses.info_nll_and_per_code
        return fn(
            *args, cat_sizes=self.spec.cat_sizes or None,
            cat_weight=self.cfg.lambda_cat, cont_weight=self.cfg.lambda_cont,
        )

    def add_info_term(self, loss, q, cat, cont):
        """(loss + lambda * NLL of the codes under Q, per-code NLL for the metrics); (loss, None)
        without a Q head."""
        if not self.use_q:
            return loss, None
        info, per_code = self.info_nll(q, cat, cont)
        # detached here: an output of a compiled loss that needs a gradient gets one, a zero tensor
        return loss + info, per_code.detach()

    def info_metrics(self, per_code: torch.Tensor) -> dict[str, torch.Tensor]:
        """L_I = H(c) - NLL of each code, as info_c1, info_c2, ..."""
        info_lb = losses.mutual_info_lower_bound(per_code, self.entropy)
        return {f"info_{name}": info_lb[i] for i, name in enumerate(self.spec.code_names)}

    @contextlib.contextmanager
    def frozen(self, *modules: torch.nn.Module):
        """Forward passes inside build no graph to these modules' parameters, for a step that
        updates other networks (G's step through D). Eager autograd would only skip their weight
        gradients; a compiled module's backward computes all of its gradients unless its
        parameters are frozen when it runs."""
        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    def backward_step(self, loss: torch.Tensor, names: tuple[str, ...]) -> None:
        """Zero, backward and step the named optimisers. With fp16's loss scaler this is one
        iteration of it (scale, step, update): the scaler steps an optimiser once an update, and
        a WGAN critic steps n_critic times before its generator does."""
        for n in names:
            self.optimizers[n].zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward(self.grad_seed)
        if distributed.active():  # a run over several processes: every rank takes the mean gradient
            distributed.average_gradients([p for n in names for g in self.optimizers[n].param_groups
                                           for p in g["params"]])
        for n in names:
            self.scaler.step(self.optimizers[n])
        self.scaler.update()

    @contextlib.contextmanager
    def eval_mode(self, *modules: torch.nn.Module):
        """Within: the modules in eval mode (batch-norm running statistics); their modes after."""
        was_training = [m.training for m in modules]
        for m in modules:
            m.eval()
        try:
            yield
        finally:
            for m, mode in zip(modules, was_training):
                m.train(mode)

    @torch.no_grad()
    def generate(self, z, cat, cont) -> torch.Tensor:
        """Images from G in eval mode (batch-norm running statistics)."""
        with self.eval_mode(self.G):
            return self.g_forward(z, cat, cont)

    @torch.no_grad()
    def predict_codes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Q's (categorical logits [N, sum K], continuous codes' means [N, n_cont]) for images in
        [-1, 1], in eval mode."""
        with self.eval_mode(self.D):
            cat_logits, mean, _ = self.D(images, with_q=True)[1]
            return cat_logits, mean

    def state_dict(self) -> dict:
        return {
            "models": {name: net.state_dict() for name, net in self.networks.items()},
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        for name, net in self.networks.items():
            net.load_state_dict(state["models"][name])
        for n, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][n])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.copies:
            self.copies.refresh()
