"""Fused Triton kernels behind fastinfo.losses (installed as ``fastinfo.kernels``).

Each module holds a private ``@triton.jit`` kernel, a launcher that owns allocation, grid and
block sizes, and the ``torch.library`` op with its fake and autograd registrations; ``entry.py``
gives each differentiable op one entry point, which eager calls reach through a
``torch.autograd.Function`` and torch.compile through the op.
"""
