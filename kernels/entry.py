"""One forward and backward formula per fused op, reached two ways.

torch.compile needs each op as a torch.library custom op with its autograd registered. Called
eagerly, such an op costs about twice the host time of a torch.autograd.Function with the same
forward and backward (bench/RESULTS.md): in an eager training loop, time the GPU waits. So eager
calls go through an autograd.Function and torch.compile traces the custom op, both running the
same functions; the ops a backward calls are reached the same way.
"""

import functools

import torch


def on_inputs_device(launcher):
    """launcher, run with its first tensor's GPU as the current CUDA device. Triton launches on
    the current device: a tensor on another GPU (a model moved to cuda:1 without
    torch.cuda.set_device) would be read by a kernel running on this one. A tensor in a list
    argument counts; a launcher without a tensor runs as it is."""

    @functools.wraps(launcher)
    def run(*args, **kwargs):
        device = next((t.device for a in args for t in (a if isinstance(a, (list, tuple)) else [a])
                       if isinstance(t, torch.Tensor)), None)
        if device is None or device.type != "cuda" or device.index == torch.cuda.current_device():
            return launcher(*args, **kwargs)
        with torch.cuda.device(device):
            return launcher(*args, **kwargs)

    run.on_inputs_device = True
    return run


def op_must_be_seen() -> bool:
    """Whether a call has to reach the registered op rather than its function: torch.compile or
    export traces it, or a dispatch mode is active (AOTAutograd tracing a backward, which torch
    2.11 does not mark as compiling, 2.14 does; fake tensors; a FLOP counter), where the
    function would launch kernels on tensors that have no data."""
    return torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack() > 0


def eager_entry(op, impl):
    """op while it has to be seen (op_must_be_seen), otherwise impl, the same computation without
    the dispatcher. Under torch.func's transforms neither serves: a clear error instead."""

    def call(*args):
        if op_must_be_seen():
            return op(*args)
        if torch._C._functorch.peek_interpreter_stack() is not None:
            raise RuntimeError(f"fastinfo's fused ops ({op._qualname}) do not support torch.func's transforms "
                               "(grad, vmap, ...): inside them use the PyTorch references, fastinfo.losses.reference")
        return impl(*args)

    return call


def differentiable_entry(op, impl, setup_context, backward):
    """Register setup_context and backward as op's autograd formula; return the op's entry point
    (eager_entry): op itself while it has to be seen, otherwise impl under the same formula in a
    torch.autograd.Function."""
    op.register_autograd(backward, setup_context=setup_context)

    class Eager(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *args):
            output = impl(*args)
            setup_context(ctx, args, output)
            return output

        @staticmethod
        def backward(ctx, *grads):
            if not torch.is_grad_enabled():
                return backward(ctx, *grads)
            # create_graph=True: the kernels' gradients know nothing of the tensors they depend
            # on and would count as constants, so a second derivative would silently lack this
            # op's part. Tied to those tensors (the saved inputs, which each backward reads, and
            # the incoming gradients), they raise instead if differentiated again.
            with torch.no_grad():
                out = backward(ctx, *grads)
            defined = [g for g in out if g is not None]
            if not defined:
                return out
            depends = [t for t in (*ctx.saved_tensors, *grads) if t is not None and t.requires_grad]
            tied = iter(FirstOrderOnly.apply(op._qualname, len(defined), *defined, *depends))
            return tuple(None if g is None else next(tied) for g in out)

    return eager_entry(op, Eager.apply)


class FirstOrderOnly(torch.autograd.Function):
    """FirstOrderOnly.apply(name, n, *grads, *depends): the n gradients unchanged, as functions
    of the tensors they depend on whose derivative is an error naming the op."""

    @staticmethod
    def forward(ctx, name, n, *tensors):
        ctx.name = name
        return tensors[:n]

    @staticmethod
    def backward(ctx, *_):
        raise RuntimeError(f"{ctx.name} has no second derivative (its backward is a fused kernel): to differentiate "
                           "twice, use the PyTorch reference in fastinfo.losses.reference")
