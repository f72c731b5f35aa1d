# Copyright (c) OpenMMLab. All rights reserved.
from .hooks import ReseedHook
from .optimizers import (AutocastOptimWrapper,
                         DecayPolicyOptimWrapperConstructor)
from .schedulers import FlatCosineLR

__all__ = [
    'ReseedHook', 'AutocastOptimWrapper', 'DecayPolicyOptimWrapperConstructor',
    'FlatCosineLR'
]
