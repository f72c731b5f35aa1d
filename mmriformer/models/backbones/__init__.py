# Copyright (c) OpenMMLab. All rights reserved.
from .riformer import RIFormer, RIFormerBlock

__all__ = ['RIFormer', 'RIFormerBlock']
