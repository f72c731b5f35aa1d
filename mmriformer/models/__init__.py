# Copyright (c) OpenMMLab. All rights reserved.
from .backbones import RIFormer, RIFormerBlock
from .layers import LayerNorm2d
from .necks import HybridEncoder
from .utils import switch_to_deploy

__all__ = [
    'RIFormer', 'RIFormerBlock', 'LayerNorm2d', 'HybridEncoder',
    'switch_to_deploy'
]
