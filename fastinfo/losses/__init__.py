"""Drop-in losses for information-regularised GANs and VAEs.

The fused ones on CUDA tensors run Triton kernels (``fastinfo.kernels``); on CPU tensors they
run the PyTorch reference (``fastinfo.losses.reference``), except under ``TRITON_INTERPRET=1``,
where the kernels run on the CPU through Triton's interpreter. ``gradient_penalty`` is PyTorch
operations on every device: its gain is a first-order formulation that compiles (see its
module). Every function works under autograd, torch.compile(fullgraph=True) and CUDA-graph
capture; ``tag_compile_cache()`` keeps torch.compile's on-disk caches from serving graphs
compiled against other versions of the fused ops.
"""

from fastinfo.losses import reference
from fastinfo.losses.backend import use_triton
from fastinfo.losses.clip import clip_weights_
from fastinfo.losses.compile_cache import tag_compile_cache
from fastinfo.losses.info import (
    categorical_information,
    gan_d_loss,
    gan_g_loss,
    info_nll,
    info_nll_and_per_code,
    info_nll_per_code,
    mutual_info_lower_bound,
)
from fastinfo.losses.mine import mine_dv_bound, mine_dv_bound_pairwise, mine_f_bound
from fastinfo.losses.penalty import gradient_penalty
from fastinfo.losses.vae import vae_kl

__all__ = [
    "categorical_information",
    "clip_weights_",
    "gan_d_loss",
    "gan_g_loss",
    "gradient_penalty",
    "info_nll",
    "info_nll_and_per_code",
    "info_nll_per_code",
    "mine_dv_bound",
    "mine_dv_bound_pairwise",
    "mine_f_bound",
    "mutual_info_lower_bound",
    "reference",
    "tag_compile_cache",
    "use_triton",
    "vae_kl",
]
