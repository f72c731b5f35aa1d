# Copyright (c) OpenMMLab. All rights reserved.
from .dfine import DFINE
from .rtdetr import RTDETR, generate_anchors

__all__ = ['DFINE', 'RTDETR', 'generate_anchors']
