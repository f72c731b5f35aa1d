# Copyright (c) OpenMMLab. All rights reserved.
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module('LN2d')
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) tensor.

    Each pixel is normalised over its C channels, as mmpretrain's ``LN2d``.
    Registered as ``LN2d`` in mmdet's scope, so ``norm_cfg=dict(type='LN2d')``
    works in mmdet configs through mmcv's ``build_norm_layer``.

    Args:
        num_channels (int): Number of channels C.
        **kwargs: Passed to :class:`torch.nn.LayerNorm` (``eps``,
            ``elementwise_affine``).
    """

    def __init__(self, num_channels: int, **kwargs) -> None:
        super().__init__(num_channels, **kwargs)
        self.num_channels = num_channels

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` of shape (N, C, H, W) over C."""
        if x.dim() != 4:
            raise ValueError(f'LN2d expects an (N, C, H, W) tensor, got '
                             f'shape {tuple(x.shape)}')
        x = F.layer_norm(
            x.permute(0, 2, 3, 1), self.normalized_shape, self.weight,
            self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
