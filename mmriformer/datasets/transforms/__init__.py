# Copyright (c) OpenMMLab. All rights reserved.
"""RT-DETR's torchvision augmentations as mmdet transforms."""
from .random_iou_crop import RandomIoUCrop
from .random_photometric_distort import RandomPhotometricDistort

__all__ = ['RandomIoUCrop', 'RandomPhotometricDistort']
