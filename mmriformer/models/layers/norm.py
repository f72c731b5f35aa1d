# Copyright (c) OpenMMLab. All rights reserved.
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmpretrain.models.utils import LayerNorm2d
from torch import nn

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
