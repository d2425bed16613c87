"""WGAN-GP's gradient penalty (Gulrajani et al. 2017) as a first-order function of the critic's
weights.

The penalty E[(||grad_x D(x_hat)||_2 - 1)^2] contains grad_x D, so training on it needs the
derivative of a derivative. ``torch.autograd.grad(create_graph=True)`` builds that from every
layer's double-backward formula: about 190 ATen operations for the paper's critic, forward and
backward (about 220 under bf16 autocast; layer norm's double backward alone makes dozens), and a
compiled critic cannot be differentiated twice at all.

:func:`gradient_penalty` writes the critic's backward to its input out as ordinary operations
(a transposed convolution for each convolution, a product with the weight for each linear
layer, layer norm's closed-form gradient), so the penalty is an ordinary function of the
weights. One plain backward trains on it, and ``torch.compile`` compiles it with the critic's
loss into one graph. It takes the critic as the sequence of its layers, which must all be of
:data:`SUPPORTED_LAYERS`; :func:`fastinfo.losses.reference.gradient_penalty` takes any critic.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fastinfo.losses.checks import to_acc

SUPPORTED_LAYERS = (nn.Linear, nn.Conv2d, nn.LeakyReLU, nn.ReLU, nn.LayerNorm, nn.Flatten, nn.Identity)


def interpolate(real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_hat = eps * real + (1 - eps) * fake, in real's dtype: the points where the penalty is
    taken."""
    return torch.lerp(fake.to(real.dtype), real, eps.to(real.dtype))


def penalty_of_grad(grad: torch.Tensor) -> torch.Tensor:
    """E[(||grad||_2 - 1)^2] over the batch, with each sample's gradient flattened."""
    return ((to_acc(grad).flatten(1).norm(dim=1) - 1) ** 2).mean()


def check_critic_layers(layers: Sequence[nn.Module]) -> None:
    """Raise TypeError, naming the layer, when :func:`critic_features_and_input_grad` cannot take these."""
    for i, layer in enumerate(layers):
        if not isinstance(layer, SUPPORTED_LAYERS):
            raise TypeError(
                f"critic layer {i} is {type(layer).__name__}; the explicit gradient penalty takes "
                f"{', '.join(t.__name__ for t in SUPPORTED_LAYERS)} "
                "(fastinfo.losses.reference.gradient_penalty takes any critic)"
            )
        if isinstance(layer, nn.Conv2d) and (layer.padding_mode != "zeros" or isinstance(layer.padding, str)):
            raise TypeError(f"critic layer {i}: Conv2d with zero padding given as numbers is supported, "
                            f"got padding={layer.padding!r}, padding_mode={layer.padding_mode!r}")
    out = getattr(layers[-1], "out_features", None) if layers else None
    if out != 1:
        raise TypeError(f"the critic's last layer must be nn.Linear(..., 1) (one score a sample), got {layers[-1:]}")


def _layer_norm(layer: nn.LayerNorm, a: torch.Tensor):
    """(output, normalised input, 1/std) of layer norm, computed in fp32 (fp64 stays fp64) and
    differentiable: the input gradient below is built from them. The output has the weight's
    dtype, as the module's has: bf16 in a bf16 network, fp32 under autocast."""
    dims = tuple(range(-len(layer.normalized_shape), 0))
    var, mean = torch.var_mean(to_acc(a), dim=dims, correction=0, keepdim=True)
    rstd = torch.rsqrt(var + layer.eps)
    x_norm = (a - mean) * rstd
    out = x_norm if layer.weight is None else x_norm * layer.weight
    out = out if layer.bias is None else out + layer.bias
    return out.to(a.dtype if layer.weight is None else layer.weight.dtype), x_norm, rstd


def _layer_norm_input_grad(layer: nn.LayerNorm, x_norm, rstd, dtype, g):
    """In the input's dtype, as autograd gives it."""
    dims = tuple(range(-len(layer.normalized_shape), 0))
    g = g if layer.weight is None else g * layer.weight
    return (rstd * (g - g.mean(dims, keepdim=True) - x_norm * (g * x_norm).mean(dims, keepdim=True))).to(dtype)


def _conv_input_grad(layer: nn.Conv2d, shape: tuple[int, ...], g: torch.Tensor) -> torch.Tensor:
    # output_padding restores the rows and columns a strided convolution's last window skipped
    out_pad = [
        shape[2 + i] - ((g.shape[2 + i] - 1) * layer.stride[i] - 2 * layer.padding[i]
                        + layer.dilation[i] * (layer.kernel_size[i] - 1) + 1)
        for i in range(2)
    ]
    return F.conv_transpose2d(g, layer.weight, stride=layer.stride, padding=layer.padding,
                              output_padding=out_pad, groups=layer.groups, dilation=layer.dilation)


def critic_features_and_input_grad(layers: Sequence[nn.Module], x: torch.Tensor, grad_from: int = 0):
    """(features, grad): features = all the layers but the last applied to x; grad = grad_x of
    the critic's summed score over the rows grad_from: of x, as a function of the layers' weights
    that one ordinary backward differentiates. The rows before grad_from ride along in the same
    forward (e.g. the real and fake batches of the critic's loss) and get no gradient computed.
    Supported layers: see :data:`SUPPORTED_LAYERS`; the last one is nn.Linear(..., 1)."""
    layers = list(layers)
    check_critic_layers(layers)
    if not 0 <= grad_from < x.shape[0]:
        raise ValueError(f"the gradient needs rows: grad_from must be in [0, {x.shape[0]}) for a batch of "
                         f"{x.shape[0]}, got {grad_from}")

    def rows(t):  # split, not a slice: its backward is one concatenation, not a zero-filled copy
        return t.split([grad_from, t.shape[0] - grad_from])[1] if grad_from else t

    saved = []  # what each layer's input gradient needs from its forward, for the rows grad_from:
    for layer in layers[:-1]:
        if isinstance(layer, nn.LayerNorm):
            y, x_norm, rstd = _layer_norm(layer, x)
            saved.append((rows(x_norm), rows(rstd), x.dtype))
        else:
            y = layer(x)
            activation = isinstance(layer, (nn.LeakyReLU, nn.ReLU))
            saved.append(rows(x) if activation else (x.shape[0] - grad_from, *x.shape[1:]))
        x = y
    if tuple(x.shape[1:]) != (layers[-1].in_features,):
        raise ValueError(f"the critic's last layer takes {layers[-1].in_features} features, and the layers "
                         f"before it give {tuple(x.shape[1:])} a sample")
    # d sum(score) / d last hidden layer: the score's weight row, the same for every sample
    g = layers[-1].weight.expand(x.shape[0] - grad_from, -1)
    for layer, s in zip(reversed(layers[:-1]), reversed(saved)):
        if isinstance(layer, nn.Linear):
            g = g @ layer.weight
        elif isinstance(layer, nn.Conv2d):
            g = _conv_input_grad(layer, s, g)
        elif isinstance(layer, nn.LeakyReLU):
            # the activations' own backward operations: one kernel each way, and differentiable in g
            g = torch.ops.aten.leaky_relu_backward(g, s, layer.negative_slope, False)
        elif isinstance(layer, nn.ReLU):
            g = torch.ops.aten.threshold_backward(g, s, 0)
        elif isinstance(layer, nn.LayerNorm):
            g = _layer_norm_input_grad(layer, *s, g)
        elif isinstance(layer, nn.Flatten):
            g = g.reshape(s)
    return x, g


def gradient_penalty(layers: Sequence[nn.Module], real: torch.Tensor, fake: torch.Tensor,
                     eps: torch.Tensor) -> torch.Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2], x_hat = eps * real + (1 - eps) * fake, for the critic D
    made of these layers in order (e.g. ``[*body, score_head]``); eps holds one weight a sample,
    shaped [B, 1, ..., 1] (e.g. [B, 1, 1, 1] uniform draws for images). fake should be detached."""
    if real.shape != fake.shape:
        raise ValueError(f"real and fake batches must have one shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    per_sample = (real.shape[0],) + (1,) * (real.dim() - 1)
    if not isinstance(eps, torch.Tensor) or tuple(eps.shape) != per_sample:
        # a [B] eps would broadcast along the samples' last dimension, silently where it has B entries
        raise ValueError(f"eps must hold one weight a sample, shaped {per_sample} for a batch shaped "
                         f"{tuple(real.shape)}, got {tuple(eps.shape) if isinstance(eps, torch.Tensor) else eps!r}")
    return penalty_of_grad(critic_features_and_input_grad(layers, interpolate(real, fake, eps))[1])
