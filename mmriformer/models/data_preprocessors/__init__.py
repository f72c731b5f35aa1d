# Copyright (c) OpenMMLab. All rights reserved.
from .batch_random_choice_resize import RTDETR_SCALES, BatchRandomChoiceResize

__all__ = ['BatchRandomChoiceResize', 'RTDETR_SCALES']
