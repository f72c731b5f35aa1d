# Copyright (c) OpenMMLab. All rights reserved.
import torch
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmpretrain.models.utils import LayerNorm2d
from torch import Tensor, nn

# mmpretrain registers LN2d in its own scope only; mmcv's build_norm_layer
# looks in the current one, so mmdet configs need it in mmdet's.
MODELS.register_module('LN2d', module=LayerNorm2d)


def build_affine_free_norm(norm_cfg: dict, channels: int) -> nn.Module:
    """Build a norm layer of ``norm_cfg`` without affine parameters.

    Args:
        norm_cfg (dict): Norm config, e.g. ``dict(type='GN', num_groups=1)``.
        channels (int): Number of channels.

    Returns:
        nn.Module: The norm, normalising only (statistics buffers kept).
    """
    norm = build_norm_layer(norm_cfg, channels)[1]
    norm.register_parameter('weight', None)
    norm.register_parameter('bias', None)
    for flag in ('affine', 'elementwise_affine'):
        if hasattr(norm, flag):
            setattr(norm, flag, False)
    return norm


class ReductionGroupNorm(nn.Module):
    """A one-group ``nn.GroupNorm`` written as mean reductions over all but
    the batch dimension: the same function, for export to OpenVINO.

    ``GroupNorm`` exports with a reshape to (N, 1, -1), which makes OpenVINO
    reorder each norm's input out of the channels-last layout of its
    convolutions and back (a tenth of RIFormer-S12's time at 640). Written
    as reductions, the norm runs in that layout.

    Args:
        norm (nn.GroupNorm): The norm, with ``num_groups=1``; its affine
            parameters (or their absence) are shared, not copied.

    Raises:
        ValueError: ``norm`` has more than one group.
    """

    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        if norm.num_groups != 1:
            raise ValueError(f'ReductionGroupNorm computes one group, not '
                             f'{norm.num_groups}')
        self.eps = norm.eps
        self.weight = norm.weight
        self.bias = norm.bias

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, ...) -> (N, C, ...)."""
        dims = tuple(range(1, x.dim()))
        centred = x - x.mean(dims, keepdim=True)
        x = centred / torch.sqrt(
            centred.pow(2).mean(dims, keepdim=True) + self.eps)
        if self.weight is None:
            return x
        shape = (-1, ) + (1, ) * (x.dim() - 2)
        return x * self.weight.view(shape) + self.bias.view(shape)


def to_reduction_group_norms(model: nn.Module) -> nn.Module:
    """Replace each one-group ``nn.GroupNorm`` of ``model`` by its
    :class:`ReductionGroupNorm`, in place.

    Args:
        model (nn.Module): The model.

    Returns:
        nn.Module: ``model``.
    """
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.GroupNorm and child.num_groups == 1:
                setattr(parent, name, ReductionGroupNorm(child))
    return model
