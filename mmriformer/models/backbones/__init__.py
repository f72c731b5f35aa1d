# Copyright (c) OpenMMLab. All rights reserved.
from .presnet import PResNet
from .riformer import RIFormer, RIFormerBlock

__all__ = ['PResNet', 'RIFormer', 'RIFormerBlock']
