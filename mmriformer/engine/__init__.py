# Copyright (c) OpenMMLab. All rights reserved.
from .hooks import ReloadBestStage1Hook, ReseedHook
from .optimizers import (AutocastOptimWrapper,
                         DecayPolicyOptimWrapperConstructor)
from .schedulers import FlatCosineLR

__all__ = [
    'ReloadBestStage1Hook', 'ReseedHook', 'AutocastOptimWrapper',
    'DecayPolicyOptimWrapperConstructor', 'FlatCosineLR'
]
