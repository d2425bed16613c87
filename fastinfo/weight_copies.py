"""bf16 copies of the networks' weights, for --weight-copies under --amp bf16.

Under autocast every convolution and linear layer casts its fp32 weight and bias to bf16 at each
call, and its bf16 weight gradient is cast back to fp32 before it reaches the optimiser: 53
casts in the compiled graphs of an InfoGAN step, none of which can fuse into the library's
products and convolutions they feed or come from on a GPU. Here each of those tensors has
a bf16 copy that the layers use while a training step runs. The optimiser's fused step reads the
copy's bf16 gradient and writes the copy after updating the fp32 parameter (fastinfo.optim), so
the casts are gone. The numbers are autocast's: the copy is the weight rounded to bf16, as
autocast's cast makes it, and the gradient is the bf16 one that autocast casts up. (Where a
weight is used twice in one backward, as D is with --no-joint-d, the two gradients are summed in
bf16 rather than fp32.)

Outside a step the layers hold their fp32 parameters: state dicts, checkpoints, sampling and
evaluation see the parameters alone.
"""

import contextlib

import torch
from torch import nn

# the layers autocast runs in bf16, casting their parameters; norms keep theirs in fp32
COPIED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                 nn.ConvTranspose3d)


class WeightCopies:
    def __init__(self, dtype: torch.dtype = torch.bfloat16):
        if dtype != torch.bfloat16:
            raise ValueError(f"weight copies are bf16 (fp16 training scales its gradients, which the copies' "
                             f"optimiser step does not), got {dtype}")
        self.dtype = dtype
        self.slots: list[tuple[nn.Module, str, nn.Parameter, nn.Parameter]] = []
        self.of: dict[torch.Tensor, nn.Parameter] = {}  # parameter -> its copy

    def add(self, *networks: nn.Module) -> None:
        """Keep a copy of each parameter of the networks' convolution and linear layers. A
        parameter two layers share (tied weights) has one copy, which both hold: the copy then
        gets both layers' gradients, as the parameter would."""
        held = {(id(layer), name) for layer, name, _, _ in self.slots}
        for net in networks:
            for layer in net.modules():
                if not isinstance(layer, COPIED_LAYERS):
                    continue
                for name, p in layer.named_parameters(recurse=False):
                    if (id(layer), name) in held or p.dtype != torch.float32:
                        continue
                    if p not in self.of:
                        self.of[p] = nn.Parameter(p.detach().to(self.dtype), requires_grad=p.requires_grad)
                    self.slots.append((layer, name, p, self.of[p]))
                    held.add((id(layer), name))

    def refresh(self) -> None:
        """Copy the parameters again: after they were changed other than by the optimisers'
        steps (a loaded state dict)."""
        write_copies(list(self.of), list(self.of.values()))

    @contextlib.contextmanager
    def in_layers(self):
        """The layers hold their copies inside, their parameters again after."""
        for layer, name, _, copy in self.slots:
            layer._parameters[name] = copy
        try:
            yield
        finally:
            for layer, name, p, _ in self.slots:
                layer._parameters[name] = p


@torch.no_grad()
def write_copies(params, copies) -> None:
    """copy <- bf16(param) for each pair whose copy is not None, in one multi-tensor call."""
    pairs = [(c, p) for p, c in zip(params, copies, strict=True) if c is not None]
    if pairs:
        torch._foreach_copy_(*map(list, zip(*pairs)))
