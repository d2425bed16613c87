"""The optimisers' steps in one launch on a GPU: RMSprop with WGAN's weight clipping folded in
(kernels/rmsprop.py), and Adam and RMSprop that write the bf16 weight copies of --weight-copies
(kernels/adam.py, fastinfo/weight_copies.py)."""

import torch

from fastinfo.losses.backend import HAVE_TRITON, is_dense, use_triton
from fastinfo.losses.checks import KERNEL_DTYPES, check_number
from fastinfo.weight_copies import write_copies

if HAVE_TRITON:
    from fastinfo.kernels import adam as _adam_kernel
    from fastinfo.kernels import rmsprop as _kernel


def _fusable(p: torch.Tensor, g: torch.Tensor, *state: torch.Tensor, copy: torch.Tensor | None = None) -> bool:
    """The kernels walk each tensor's memory as one flat array: one layout for all, state in the
    parameter's dtype, the gradient in the parameter's or the copy's (bf16)."""
    return p.dtype in KERNEL_DTYPES and g.dtype in (p.dtype, p.dtype if copy is None else copy.dtype) \
        and all(s.dtype == p.dtype for s in state) \
        and all(t.stride() == p.stride() for t in (g, *state, *([] if copy is None else [copy]))) and is_dense(p)


def rmsprop_step_(params, grads, square_avgs, *, lr: float, alpha: float, eps: float, weight_decay: float = 0.0,
                  clip_value: float | None = None, copies=None, fused: bool | None = None) -> None:
    """torch.optim.RMSprop's update (no momentum, not centered) of each parameter, in place,
    followed by a clamp to [-clip_value, clip_value] when clip_value is given:

        g <- g + weight_decay * p;  v <- alpha * v + (1 - alpha) * g^2
        p <- clamp(p - lr * g / (sqrt(v) + eps), -clip_value, clip_value)

    copies: None, or one entry a parameter: None, or its bf16 copy, which gets bf16(p) after the
    update; such a parameter's gradient is its copy's (bf16), taken as fp32.

    fused (None: where the tensors are on a GPU; True: also on the CPU, which needs
    TRITON_INTERPRET=1): one Triton launch per dtype updates every float32 / bfloat16 / float16
    parameter whose gradient and square_avg share its dense layout (arithmetic in fp32), with no
    host sync: safe inside CUDA-graph capture. Other tensors, and every tensor with fused False,
    take torch's multi-tensor ops in torch.optim.RMSprop's order, giving its numbers.
    """
    rows = list(zip(params, grads, square_avgs, copies or [None] * len(params), strict=True))
    if not rows:
        return
    kernel_rows, rest = _kernel_rows(rows, fused)
    for same, copied in _by_copy(kernel_rows):
        ps, gs, vs, cs = same
        _kernel.rmsprop_(ps, gs, vs, cs if copied else [], lr, alpha, eps, weight_decay, clip_value or 0.0)
    if not rest:
        return
    ps, gs, vs, cs = map(list, zip(*rest))
    gs = [g.to(p.dtype) for p, g in zip(ps, gs)]
    if weight_decay:
        gs = torch._foreach_add(gs, ps, alpha=weight_decay)
    torch._foreach_mul_(vs, alpha)
    torch._foreach_addcmul_(vs, gs, gs, value=1 - alpha)
    avg = torch._foreach_sqrt(vs)
    torch._foreach_add_(avg, eps)
    torch._foreach_addcdiv_(ps, gs, avg, value=-lr)
    if clip_value:
        torch._foreach_clamp_min_(ps, -clip_value)
        torch._foreach_clamp_max_(ps, clip_value)
    write_copies(ps, cs)


def _kernel_rows(rows, fused: bool | None):
    """(rows the fused kernel takes, the rest) of rows (param, grad, *state, copy or None), all
    on one device."""
    device = rows[0][0].device
    if any(t is not None and t.device != device for row in rows for t in row):
        raise ValueError(f"every parameter, gradient, state tensor and copy must be on one device; "
                         f"params[0] is on {device}")
    if fused and not use_triton(rows[0][0]):
        raise ValueError(f"fused=True needs CUDA tensors (or TRITON_INTERPRET=1 on the CPU), got {device} ones")
    on_kernel = fused if fused is not None else HAVE_TRITON and device.type == "cuda"
    kernel_rows, rest = [], []
    for row in rows:
        (kernel_rows if on_kernel and _fusable(*row[:-1], copy=row[-1]) else rest).append(row)
    return kernel_rows, rest


def _by_copy(rows):
    """(columns, has copies) for the rows with copies and for those without: a launch takes
    copies for all of its parameters or for none."""
    for copied in (True, False):
        same = [row for row in rows if (row[-1] is not None) == copied]
        if same:
            yield tuple(map(list, zip(*same))), copied


class _UpdatesCopies:
    """What both optimisers here do around their own update: a parameter with a bf16 copy in
    self.copies takes the copy's gradient, its own where the copy has none (a gradient summed
    in fp32 and assigned to the parameter), or the sum of both where both have one (a loss
    taken outside the copies' layers too); zero_grad clears the copies' gradients too."""

    copies: dict

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for copy in self.copies.values():
            if copy.grad is None:
                continue
            if set_to_none:
                copy.grad = None
            else:
                copy.grad.zero_()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            rows = []  # (param, gradient, copy or None) of each parameter with a gradient
            for p in group["params"]:
                copy = self.copies.get(p)
                g = p.grad if copy is None or copy.grad is None else copy.grad
                if g is not None and g is not p.grad and p.grad is not None:
                    g = p.grad + g
                if g is None:
                    continue
                if g.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                rows.append((p, g, copy))
            if rows:
                self._update(group, rows)
        return loss


class ClippedRMSprop(_UpdatesCopies, torch.optim.Optimizer):
    """RMSprop (torch.optim.RMSprop without momentum or centering) whose step clamps each
    parameter to [-clip_value, clip_value] after its update: the WGAN critic's update (Arjovsky
    et al. 2017) in one fused launch. clip_value None: plain RMSprop, still one launch.

    fused: as in rmsprop_step_ (None: the Triton kernel on a GPU, torch's ops on the CPU). copies:
    as in Adam. A parameter's state is its square_avg, as in torch.optim.RMSprop, so this
    optimiser loads that one's state dicts. Hyperparameters are read at each step; a step
    captured in a CUDA graph keeps the values of its capture.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 clip_value: float | None = None, *, copies=None, fused: bool | None = None):
        check_number("lr", lr, 0.0)
        check_number("alpha", alpha, 0.0, 1.0)
        check_number("eps", eps, 0.0)
        check_number("weight_decay", weight_decay, 0.0)
        if clip_value is not None:
            check_number("clip_value", clip_value, 0.0, low_open=True)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, clip_value=clip_value))
        self.fused, self.copies = fused, copies or {}

    def __setstate__(self, state):
        super().__setstate__(state)
        # a torch.optim.RMSprop state dict has no clip value: keep this optimiser's
        for group in self.param_groups:
            group.setdefault("clip_value", self.defaults["clip_value"])

    def load_state_dict(self, state_dict: dict) -> None:
        # before anything is loaded: a torch.optim.RMSprop state with an update this one does
        # not make would otherwise go on as plain RMSprop
        for i, group in enumerate(state_dict["param_groups"]):
            other = {k: group[k] for k in ("momentum", "centered", "maximize") if group.get(k)}
            if other:
                raise ValueError(f"ClippedRMSprop makes RMSprop's update without momentum, centering or maximize; "
                                 f"param group {i} of this state dict has {other}")
        super().load_state_dict(state_dict)

    def _update(self, group: dict, rows) -> None:
        ps, gs, cs = map(list, zip(*rows))
        vs = []
        for p in ps:
            state = self.state[p]
            if "square_avg" not in state:
                state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            vs.append(state["square_avg"])
        rmsprop_step_(ps, gs, vs, lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
                      weight_decay=group["weight_decay"], clip_value=group["clip_value"], copies=cs, fused=self.fused)


class Adam(_UpdatesCopies, torch.optim.Adam):
    """torch.optim.Adam whose parameters may have bf16 copies that the forward passes use
    (--weight-copies, fastinfo/weight_copies.py): copies maps a parameter to its copy. Such a
    parameter takes the copy's gradient (plus its own, if it has one too), and its copy gets
    bf16(p) after each update.

    On a GPU (fused None or True; True also on the CPU, under TRITON_INTERPRET=1) one launch
    updates the parameters with copies and writes the copies, reading the bf16 gradients as they
    are, and one more updates the others: the numbers of torch.optim.Adam(fused=True) on the
    gradients taken to fp32, with no host sync (the step counts live on the device), so a step
    is safe inside CUDA-graph capture. Elsewhere, and with amsgrad, maximize or other layouts,
    torch.optim.Adam's step runs on the gradients taken to fp32 and the copies are written
    after it. The state is torch.optim.Adam's, so each loads the other's state dicts.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, *, copies=None, fused: bool | None = None, **kwargs):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, **kwargs)
        self.kernel_fused, self.copies = fused, copies or {}

    def _update(self, group: dict, rows) -> None:
        plain = not (group["amsgrad"] or group["maximize"] or group["differentiable"]
                     or group.get("decoupled_weight_decay"))
        # a parameter without state yet gets zeros in its own layout: it stands in for them here
        moments = [(st["exp_avg"], st["exp_avg_sq"]) if (st := self.state[p]) else (p, p) for p, _, _ in rows]
        kernel_rows, rest = _kernel_rows([(p, g, *m, c) for (p, g, c), m in zip(rows, moments)],
                                         self.kernel_fused if plain else False)
        if kernel_rows:
            self._kernel_step(group, [(p, g, c) for p, g, *_, c in kernel_rows])
        if rest:
            self._torch_step(group, [(p, g, c) for p, g, *_, c in rest])

    def _kernel_step(self, group: dict, rows) -> None:
        lr = group["lr"]
        if isinstance(lr, torch.Tensor):
            raise TypeError("fastinfo.optim.Adam's fused step takes lr as a Python number, got a tensor")
        columns = []
        for p, g, c in rows:
            state = self.state[p]
            if not state:  # torch.optim.Adam's state, the step count on the device as with capturable
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            elif state["step"].device != p.device:  # a CPU count from a state dict: on the device from now on
                state["step"] = state["step"].to(device=p.device, dtype=torch.float32)
            columns.append((p, g, state["exp_avg"], state["exp_avg_sq"], state["step"], c))
        torch._foreach_add_([row[4] for row in columns], 1)
        beta1, beta2 = group["betas"]
        for (ps, gs, ms, vs, ts, cs), copied in _by_copy(columns):
            _adam_kernel.adam_(ps, gs, ms, vs, ts, cs if copied else [], lr, beta1, beta2, group["eps"],
                               group["weight_decay"])

    def _torch_step(self, group: dict, rows) -> None:
        """torch.optim.Adam's own step on rows (param, grad, copy or None), the gradients taken to
        the parameters' dtype; then the copies."""
        assigned = [p for p, g, _ in rows if g is not p.grad]
        for p, g, _ in rows:
            p.grad = g.to(p.dtype)
        groups, self.param_groups = self.param_groups, [{**group, "params": [p for p, _, _ in rows]}]
        try:
            torch.optim.Adam.step(self)
        finally:
            self.param_groups = groups
            for p in assigned:
                p.grad = None
        write_copies([p for p, _, _ in rows], [c for _, _, c in rows])
