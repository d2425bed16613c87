"""Float conversions written out where Triton's CPU interpreter (TRITON_INTERPRET=1) converts
wrongly or otherwise than a GPU."""

import triton
import triton.language as tl


@triton.jit
def to_bf16(x):
    """fp32 x rounded to the nearest bf16, ties to even, as torch's cast rounds (the CPU
    interpreter's own cast truncates): a copy equals param.to(torch.bfloat16) bit for bit."""
    bits = x.to(tl.uint32, bitcast=True)
    rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) >> 16
    # NaN keeps a quiet NaN's pattern: the rounding carry could turn its payload into infinity
    rounded = tl.where(x != x, 0x7FC0, rounded)
    return rounded.to(tl.uint16).to(tl.bfloat16, bitcast=True)


@triton.jit
def store_narrowed(ptrs, value, mask):
    """tl.store(ptrs, value, mask), a float64 value reaching a 16-bit float through float32: the
    interpreter turns a direct float64-to-bfloat16 cast into garbage. (Two roundings can differ
    from the GPU's one by an ulp, in rare ties.)"""
    if value.dtype == tl.float64 and ptrs.dtype.element_ty.primitive_bitwidth == 16:
        value = value.to(tl.float32)
    tl.store(ptrs, value, mask=mask)
