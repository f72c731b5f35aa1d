# Copyright (c) OpenMMLab. All rights reserved.
from .rtdetr import RTDETR, generate_anchors

__all__ = ['RTDETR', 'generate_anchors']
