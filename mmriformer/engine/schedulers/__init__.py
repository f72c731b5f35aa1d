# Copyright (c) OpenMMLab. All rights reserved.
from .flat_cosine_lr import FlatCosineLR

__all__ = ['FlatCosineLR']
