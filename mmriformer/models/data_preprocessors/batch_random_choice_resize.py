# Copyright (c) OpenMMLab. All rights reserved.
import random
from typing import List, Optional, Sequence, Tuple

import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import scale_boxes
from mmengine.logging import MessageHub
from torch import Tensor, nn

# RT-DETR's training sizes: 640 three times, so it is drawn 3 in 13.
RTDETR_SCALES = (480, 512, 544, 576, 608, 640, 640, 640, 672, 704, 736, 768,
                 800)


@MODELS.register_module()
class BatchRandomChoiceResize(nn.Module):
    """Resize each training batch to a square size drawn from a list.

    RT-DETR's multi-scale training: one size per batch, chosen uniformly
    from ``scales`` (a size listed twice is drawn twice as often), the whole
    batch resized with :func:`torch.nn.functional.interpolate` in ``mode``
    (official: nearest), boxes scaled with it. mmdet's
    ``BatchSyncRandomResize`` differs in each point: sizes uniform over a
    range, bilinear, aspect kept, and the size broadcast from rank 0 (a
    host sync each batch); here each rank draws its own size from Python's
    ``random`` (seeded by mmengine), as the official code does.

    Args:
        scales (Sequence[int]): Side lengths to choose from. Defaults to
            RT-DETR's 13 sizes, 480 to 800.
        mode (str): Interpolation mode. Defaults to 'nearest'.
        stop_epoch (int, optional): From this (0-based) epoch on, batches
            keep their size (RT-DETRv2 stops at 71 of 72). Defaults to None:
            never.
    """

    def __init__(self,
                 scales: Sequence[int] = RTDETR_SCALES,
                 mode: str = 'nearest',
                 stop_epoch: Optional[int] = None) -> None:
        super().__init__()
        if not scales or any(int(s) != s or s <= 0 for s in scales):
            raise ValueError(f'scales must be positive integer sizes, got '
                             f'{scales!r}')
        self.scales = tuple(int(s) for s in scales)
        self.mode = mode
        self.stop_epoch = stop_epoch

    def forward(self, inputs: Tensor, data_samples: List[DetDataSample]
                ) -> Tuple[Tensor, List[DetDataSample]]:
        """Resize the batch and its boxes.

        Args:
            inputs (Tensor): Images, shape (N, C, H, W).
            data_samples (list[DetDataSample]): Their samples; ``img_shape``,
                ``pad_shape``, ``batch_input_shape`` and the boxes of
                ``gt_instances`` (and ``ignored_instances``) are updated in
                place.

        Returns:
            tuple: The resized images, shape (N, C, S, S), and the samples.
        """
        if self.stop_epoch is not None:
            epoch = MessageHub.get_current_instance().get_info('epoch', 0)
            if epoch >= self.stop_epoch:
                return inputs, data_samples
        size = random.choice(self.scales)
        height, width = inputs.shape[-2:]
        if (height, width) == (size, size):
            return inputs, data_samples
        inputs = F.interpolate(inputs, size=(size, size), mode=self.mode)
        scale_y, scale_x = size / height, size / width
        for sample in data_samples:
            img_h, img_w = sample.img_shape
            pad_h, pad_w = sample.get('pad_shape', (height, width))
            sample.set_metainfo({
                'img_shape': (round(img_h * scale_y), round(img_w * scale_x)),
                'pad_shape': (round(pad_h * scale_y), round(pad_w * scale_x)),
                'batch_input_shape': (size, size)
            })
            for field in ('gt_instances', 'ignored_instances'):
                if field in sample:
                    instances = sample.get(field)
                    instances.bboxes = scale_boxes(instances.bboxes,
                                                   (scale_x, scale_y))
        return inputs, data_samples
