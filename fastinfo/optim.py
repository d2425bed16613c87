"""RMSprop with WGAN's weight clipping folded into its step: one launch on a GPU (kernels/rmsprop.py)."""

import math

import torch

from fastinfo.losses._dispatch import HAVE_TRITON, KERNEL_DTYPES, use_triton

if HAVE_TRITON:
    from fastinfo.kernels import rmsprop as _kernel


def _dense(t: torch.Tensor) -> bool:
    """Whether t's elements fill its memory span without gaps or overlaps, in any dimension order."""
    expected = 1
    for size, stride in sorted(((s, st) for s, st in zip(t.shape, t.stride()) if s != 1), key=lambda x: x[1]):
        if stride != expected:
            return False
        expected *= size
    return True


def _fusable(p: torch.Tensor, g: torch.Tensor, v: torch.Tensor) -> bool:
    """The kernel walks the three tensors' memory as one flat array each."""
    return p.dtype in KERNEL_DTYPES and g.dtype == v.dtype == p.dtype and p.stride() == g.stride() == v.stride() \
        and _dense(p)


def rmsprop_step_(params, grads, square_avgs, *, lr: float, alpha: float, eps: float, weight_decay: float = 0.0,
                  clip_value: float | None = None, fused: bool | None = None) -> None:
    """torch.optim.RMSprop's update (no momentum, not centered) of each parameter, in place,
    followed by a clamp to [-clip_value, clip_value] when clip_value is given:

        g <- g + weight_decay * p;  v <- alpha * v + (1 - alpha) * g^2
        p <- clamp(p - lr * g / (sqrt(v) + eps), -clip_value, clip_value)

    fused (None: where the tensors are on a GPU; True: also on the CPU, which needs
    TRITON_INTERPRET=1): one Triton launch per dtype updates every float32 / bfloat16 / float16
    parameter whose gradient and square_avg share its dense layout (arithmetic in fp32), with no
    host sync: safe inside CUDA-graph capture. Other tensors, and every tensor with fused False,
    take torch's multi-tensor ops in torch.optim.RMSprop's order, giving its numbers.
    """
    triples = list(zip(params, grads, square_avgs, strict=True))
    if not triples:
        return
    device = triples[0][0].device
    if any(t.device != device for triple in triples for t in triple):
        raise ValueError(f"every parameter, gradient and square_avg must be on one device; params[0] is on {device}")
    if fused and not use_triton(triples[0][0]):
        raise ValueError(f"fused=True needs CUDA tensors (or TRITON_INTERPRET=1 on the CPU), got {device} ones")
    on_kernel = fused if fused is not None else HAVE_TRITON and device.type == "cuda"
    kernel, rest = [], []
    for triple in triples:
        (kernel if on_kernel and _fusable(*triple) else rest).append(triple)
    if kernel:
        _kernel.rmsprop_(*map(list, zip(*kernel)), lr, alpha, eps, weight_decay, clip_value or 0.0)
    if not rest:
        return
    ps, gs, vs = map(list, zip(*rest))
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


def _check(name: str, value, low: float, high: float = math.inf, low_open: bool = False) -> None:
    if isinstance(value, torch.Tensor) or not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a Python number, got {type(value).__name__}")
    if not (math.isfinite(value) and (value > low if low_open else value >= low) and value <= high):
        raise ValueError(f"{name} must be in {'(' if low_open else '['}{low}, {high}], got {value}")


class ClippedRMSprop(torch.optim.Optimizer):
    """RMSprop (torch.optim.RMSprop without momentum or centering) whose step clamps each
    parameter to [-clip_value, clip_value] after its update: the WGAN critic's update (Arjovsky
    et al. 2017) in one fused launch. clip_value None: plain RMSprop, still one launch.

    fused: as in rmsprop_step_ (None: the Triton kernel on a GPU, torch's ops on the CPU). A
    parameter's state is its square_avg, as in torch.optim.RMSprop, so this optimiser loads
    that one's state dicts. Hyperparameters are read at each step; a step captured in a CUDA
    graph keeps the values of its capture.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 clip_value: float | None = None, *, fused: bool | None = None):
        _check("lr", lr, 0.0)
        _check("alpha", alpha, 0.0, 1.0)
        _check("eps", eps, 0.0)
        _check("weight_decay", weight_decay, 0.0)
        if clip_value is not None:
            _check("clip_value", clip_value, 0.0, low_open=True)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, clip_value=clip_value))
        self.fused = fused

    def __setstate__(self, state):
        super().__setstate__(state)
        # a torch.optim.RMSprop state dict has no clip value: keep this optimiser's
        for group in self.param_groups:
            group.setdefault("clip_value", self.defaults["clip_value"])

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, square_avgs = [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("ClippedRMSprop does not support sparse gradients")
                state = self.state[p]
                if "square_avg" not in state:
                    state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                params.append(p)
                grads.append(p.grad)
                square_avgs.append(state["square_avg"])
            rmsprop_step_(params, grads, square_avgs, lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
                          weight_decay=group["weight_decay"], clip_value=group["clip_value"], fused=self.fused)
        return loss
