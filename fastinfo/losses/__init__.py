"""Drop-in losses for information-regularised GANs.

CUDA tensors run the fused Triton kernels (``fastinfo.kernels``); CPU tensors run the PyTorch
reference (``fastinfo.losses.reference``), except under ``TRITON_INTERPRET=1``, where the kernels
run on the CPU through Triton's interpreter. Every function works under autograd,
torch.compile(fullgraph=True) and CUDA-graph capture.
"""

from fastinfo.losses import reference
from fastinfo.losses._dispatch import use_triton
from fastinfo.losses.clip import clip_weights_
from fastinfo.losses.info import (
    gan_d_loss,
    gan_g_loss,
    info_nll,
    info_nll_and_per_code,
    info_nll_per_code,
    mutual_info_lower_bound,
)
from fastinfo.losses.mine import mine_dv_bound, mine_dv_bound_pairwise, mine_f_bound

__all__ = [
    "clip_weights_",
    "gan_d_loss",
    "gan_g_loss",
    "info_nll",
    "info_nll_and_per_code",
    "info_nll_per_code",
    "mine_dv_bound",
    "mine_dv_bound_pairwise",
    "mine_f_bound",
    "mutual_info_lower_bound",
    "reference",
    "use_triton",
]
