# Copyright (c) OpenMMLab. All rights reserved.
from .reload_best_stage1_hook import ReloadBestStage1Hook
from .reseed_hook import ReseedHook

__all__ = ['ReloadBestStage1Hook', 'ReseedHook']
