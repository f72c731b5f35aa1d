# Copyright (c) OpenMMLab. All rights reserved.
from .coco import CheckedCocoDataset, skip_reason
from .synthetic_shapes import (ShapesSettings, SyntheticShapesDataset,
                               generate_shapes_dataset)
from .transforms import DEIMMosaic, RandomIoUCrop, RandomPhotometricDistort

__all__ = [
    'CheckedCocoDataset', 'skip_reason', 'ShapesSettings',
    'SyntheticShapesDataset', 'generate_shapes_dataset', 'DEIMMosaic',
    'RandomIoUCrop', 'RandomPhotometricDistort'
]
