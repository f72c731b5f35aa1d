# Copyright (c) OpenMMLab. All rights reserved.
from .hooks import ReseedHook
from .optimizers import (AutocastOptimWrapper,
                         DecayPolicyOptimWrapperConstructor)

__all__ = [
    'ReseedHook', 'AutocastOptimWrapper', 'DecayPolicyOptimWrapperConstructor'
]
