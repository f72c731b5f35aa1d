# Copyright (c) OpenMMLab. All rights reserved.
from .dfine_head import DFineHead
from .rtdetr_head import RTDETRHead

__all__ = ['DFineHead', 'RTDETRHead']
