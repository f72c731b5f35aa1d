# Copyright (c) OpenMMLab. All rights reserved.
from .rtdetr_head import RTDETRHead

__all__ = ['RTDETRHead']
