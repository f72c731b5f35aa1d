# Copyright (c) OpenMMLab. All rights reserved.
from .synthetic_shapes import SyntheticShapesDataset, generate_shapes_dataset

__all__ = ['SyntheticShapesDataset', 'generate_shapes_dataset']
