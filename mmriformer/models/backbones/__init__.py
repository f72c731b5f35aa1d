# Copyright (c) OpenMMLab. All rights reserved.
from .presnet import PResNet
from .riformer import RIFormer

__all__ = ['PResNet', 'RIFormer']
