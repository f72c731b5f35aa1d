# Copyright (c) OpenMMLab. All rights reserved.
"""RT-DETR's torchvision augmentations and DEIM's mosaic."""
from .deim_mosaic import DEIMMosaic
from .random_iou_crop import RandomIoUCrop
from .random_photometric_distort import RandomPhotometricDistort

__all__ = ['DEIMMosaic', 'RandomIoUCrop', 'RandomPhotometricDistort']
