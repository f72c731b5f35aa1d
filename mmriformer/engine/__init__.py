# Copyright (c) OpenMMLab. All rights reserved.
from .hooks import ReseedHook

__all__ = ['ReseedHook']
