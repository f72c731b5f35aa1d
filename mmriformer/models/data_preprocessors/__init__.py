# Copyright (c) OpenMMLab. All rights reserved.
from .batch_random_choice_resize import RTDETR_SCALES, BatchRandomChoiceResize
from .deim_batch_mixup import DEIMBatchMixUp

__all__ = ['BatchRandomChoiceResize', 'DEIMBatchMixUp', 'RTDETR_SCALES']
