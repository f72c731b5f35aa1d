# Copyright (c) OpenMMLab. All rights reserved.
from .reseed_hook import ReseedHook

__all__ = ['ReseedHook']
