# Copyright (c) OpenMMLab. All rights reserved.
"""oneDNN kernels for CPU inference of the deploy forms, and the fused
RIFormer deploy block built on them.

PyTorch ships oneDNN's fused linear and convolution kernels (the ones
``torch.compile`` emits on CPU) as ``torch.ops.mkldnn`` operators. Used
eagerly they fuse the activation or the residual add into the GEMM and take
weights pre-packed into oneDNN's blocked layout, which saves a reorder of
every weight on every call. They have no autograd formula, so they only run
when no gradient is recorded; results equal ``F.linear``/``F.conv2d`` up to
float rounding.
"""
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..layers.norm import LayerNorm2d


def onednn_usable(x: Tensor) -> bool:
    """Whether the oneDNN inference kernels can run on ``x``."""
    return (x.device.type == 'cpu' and x.dtype == torch.float32
            and not torch.is_grad_enabled()
            and torch.backends.mkldnn.is_available())


class PackedWeight:
    """A oneDNN-packed copy of a weight, rebuilt when the weight changes.

    The key holds the weight's storage and version counter, so an optimizer
    step, ``load_state_dict`` or ``.to()`` invalidates the copy. It is never
    saved, copied or pickled: a copy of the module starts empty.
    """

    def __init__(self) -> None:
        self.key = None
        self.packed = None

    def get(self, weight: Tensor, extra_key: Sequence,
            pack: Callable[[], Tensor]) -> Tensor:
        """Return the packed weight, packing it if ``weight`` changed."""
        key = (weight.data_ptr(), weight._version, *extra_key)
        if key != self.key:
            self.packed, self.key = pack(), key
        return self.packed

    def __deepcopy__(self, memo) -> 'PackedWeight':
        return PackedWeight()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


def linear_gelu(x: Tensor, weight: Tensor, bias: Tensor,
                cache: PackedWeight) -> Tensor:
    """``gelu(x @ weight.T + bias)`` for x of shape (M, K)."""
    if not onednn_usable(x):
        return F.gelu(F.linear(x, weight, bias))
    packed = cache.get(
        weight, (), lambda: torch.ops.mkldnn._reorder_linear_weight(
            weight, x.shape[0]))
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, 'gelu', [],
                                              'none')


def linear_add(x: Tensor, residual: Tensor, weight: Tensor, bias: Tensor,
               cache: PackedWeight) -> Tensor:
    """``residual + x @ weight.T + bias`` for x of shape (M, K)."""
    if not onednn_usable(x):
        return torch.addmm(residual, x, weight.t()).add_(bias)
    packed = cache.get(
        weight, (), lambda: torch.ops.mkldnn._reorder_linear_weight(
            weight, x.shape[0]))
    return torch.ops.mkldnn._linear_pointwise.binary(x, residual, packed,
                                                     bias, 'add')


def conv2d(x: Tensor, conv: nn.Conv2d, cache: PackedWeight) -> Tensor:
    """``conv(x)`` with a packed weight, for a plain (groups=1) conv."""
    if not onednn_usable(x) or conv.groups != 1 or \
            isinstance(conv.padding, str):
        return conv(x)
    args = (list(conv.padding), list(conv.stride), list(conv.dilation), 1)
    packed = cache.get(
        conv.weight, tuple(x.shape),
        lambda: torch.ops.mkldnn._reorder_convolution_weight(
            conv.weight, *args, list(x.shape)))
    return torch.ops.mkldnn._convolution_pointwise(x, packed, conv.bias,
                                                   *args, 'none', [], '')


def fused_norm_kind(norm: nn.Module, act: nn.Module) -> Optional[str]:
    """Which fused deploy path a RIFormer block can take, if any.

    Args:
        norm (nn.Module): The block's deploy norm (``norm_reparam``).
        act (nn.Module): The MLP's activation.

    Returns:
        str | None: ``'gn'`` for GroupNorm with one group, ``'ln'`` for LN2d,
        None otherwise. The fused path computes the exact GELU, so other
        activations take None too.
    """
    if not isinstance(act, nn.GELU) or act.approximate != 'none':
        return None
    if isinstance(norm, nn.GroupNorm) and norm.num_groups == 1:
        return 'gn'
    if isinstance(norm, LayerNorm2d):
        return 'ln'
    return None


def riformer_block_fused(x: Tensor, kind: str, norm_reparam: nn.Module,
                         norm2: nn.Module, fc1: nn.Conv2d, fc2: nn.Conv2d,
                         packed_fc1: PackedWeight,
                         packed_fc2: PackedWeight) -> Tensor:
    """A deploy-form RIFormer block on channels-last memory.

    Computes ``y = x + norm_reparam(x)``, then
    ``y + fc2(gelu(fc1(norm2(y))))``.
    The norms run as native kernels on the channels-last (N, C, H, W) view;
    the 1x1 convolutions run as GEMMs on the (N * H * W, C) token view of the
    same memory, so no layout conversion happens. Without autograd on CPU,
    oneDNN fuses GELU into fc1 and the residual add into fc2, with
    pre-packed weights.

    Args:
        x (Tensor): Input of shape (N, C, H, W).
        kind (str): ``'gn'`` or ``'ln'``, from :func:`fused_norm_kind`.
        norm_reparam (nn.Module): The folded first norm (with affine).
        norm2 (nn.Module): The affine-free second norm.
        fc1 (nn.Conv2d): The MLP's first 1x1 conv, C -> hidden.
        fc2 (nn.Conv2d): The MLP's second 1x1 conv, hidden -> C.
        packed_fc1 (PackedWeight): Packed-weight cache of ``fc1``.
        packed_fc2 (PackedWeight): Packed-weight cache of ``fc2``.

    Returns:
        Tensor: Output of shape (N, C, H, W), channels-last.
    """
    x = x.contiguous(memory_format=torch.channels_last)
    n, c, h, w = x.shape
    if kind == 'gn':
        y = x + F.group_norm(x, 1, norm_reparam.weight, norm_reparam.bias,
                             norm_reparam.eps)
        z = F.group_norm(y, 1, None, None, norm2.eps)
    else:
        tokens = x.permute(0, 2, 3, 1)
        y = tokens + F.layer_norm(tokens, (c, ), norm_reparam.weight,
                                  norm_reparam.bias, norm_reparam.eps)
        z = F.layer_norm(y, (c, ), None, None, norm2.eps)
        y, z = y.permute(0, 3, 1, 2), z.permute(0, 3, 1, 2)
    y = y.permute(0, 2, 3, 1).reshape(-1, c)
    z = z.permute(0, 2, 3, 1).reshape(-1, c)
    hidden = linear_gelu(z, fc1.weight.view(fc1.out_channels, c), fc1.bias,
                         packed_fc1)
    out = linear_add(hidden, y, fc2.weight.view(c, fc2.in_channels),
                     fc2.bias, packed_fc2)
    return out.view(n, h, w, c).permute(0, 3, 1, 2)
