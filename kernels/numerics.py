"""What every fused kernel shares: the accumulation dtype, and log-sum-exp pieces that treat
NaN and +-inf as torch.logsumexp does.

A running maximum m may be infinite: the maximum of -inf values, or a +inf score. Subtracting it
would give -inf - -inf = NaN for lanes that should count 0, so exponents are taken relative to
``lse_shift(m)``: m itself where finite, 0 where infinite (as torch.logsumexp does). Masked lanes
hold -inf, never a finite stand-in: a stand-in such as -1e30 would win over real scores below it.
A NaN score needs no flag: exp(NaN - shift) makes the sum NaN whether or not the maximum kept it.
"""

import torch
import triton
import triton.language as tl

INF = tl.constexpr(float("inf"))


def acc_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """float64 when any given tensor is float64, else float32: the kernels' accumulation dtype."""
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) \
        else torch.float32


def tl_dtype(dtype: torch.dtype):
    """The Triton type of an accumulation dtype (acc_dtype's answer)."""
    return tl.float64 if dtype == torch.float64 else tl.float32


@triton.jit
def lse_shift(m):
    """m where finite, else 0: the shift a log-sum-exp subtracts before exp."""
    return tl.where(tl.abs(m) == INF, 0.0, m)


@triton.jit
def rescale(s, m_old, m_new):
    """A running sum of exp(x - lse_shift(m_old)) made relative to lse_shift(m_new), m_new >= m_old.
    An m_old of -inf (nothing counted yet) gives 0 whatever m_new is."""
    return s * tl.exp(m_old - lse_shift(m_new))


@triton.jit
def logaddexp(a, b):
    """log(exp(a) + exp(b)), as torch.logaddexp: +inf if either is +inf, -inf if both are -inf."""
    hi = lse_shift(tl.maximum(a, b))
    return hi + tl.log(tl.exp(a - hi) + tl.exp(b - hi))
