# Copyright (c) OpenMMLab. All rights reserved.
from .hgnetv2 import HGNetV2
from .presnet import PResNet
from .riformer import RIFormer

__all__ = ['HGNetV2', 'PResNet', 'RIFormer']
