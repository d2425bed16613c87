"""One forward and backward formula per fused op, reached two ways.

torch.compile needs each op as a torch.library custom op with its autograd registered. Called
eagerly, such an op costs about 35 µs of host time more than a torch.autograd.Function with the
same forward and backward (on a 2-core CPU, 76 against 40 µs for a forward and backward that
launch nothing): in an eager training loop, time the GPU waits. So eager calls go through an
autograd.Function and torch.compile traces the custom op, both running the same functions.
"""

import torch


def differentiable_entry(op, impl, setup_context, backward):
    """Register setup_context and backward as op's autograd formula; return the op's entry point:
    op itself while torch.compile traces, otherwise impl (op's own function) under the same
    formula in a torch.autograd.Function."""
    op.register_autograd(backward, setup_context=setup_context)

    class Eager(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *args):
            output = impl(*args)
            setup_context(ctx, args, output)
            return output

        @staticmethod
        def backward(ctx, *grads):
            return backward(ctx, *grads)

    def call(*args):
        return op(*args) if torch.compiler.is_compiling() else Eager.apply(*args)

    return call
