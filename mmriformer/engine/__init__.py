# Copyright (c) OpenMMLab. All rights reserved.
from .hooks import ReseedHook
from .optimizers import AutocastOptimWrapper

__all__ = ['ReseedHook', 'AutocastOptimWrapper']
