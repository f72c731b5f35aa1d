# Copyright (c) OpenMMLab. All rights reserved.
"""oneDNN kernels for CPU inference of the deploy forms.

PyTorch ships oneDNN's fused linear and convolution kernels (the ones
``torch.compile`` emits on CPU) as ``torch.ops.mkldnn`` operators. Used
eagerly they fuse the activation or the residual add into the GEMM and take
weights pre-packed into oneDNN's blocked layout, which saves a reorder of
every weight on every call. They have no autograd formula, so they only run
when no gradient is recorded; results equal ``F.linear``/``F.conv2d`` up to
float rounding.
"""
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
