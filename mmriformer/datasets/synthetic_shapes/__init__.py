# Copyright (c) OpenMMLab. All rights reserved.
"""A small synthetic detection dataset of coloured shapes, made on first use.

The demo configs need data that can be trained on without any download, so
the images and their COCO annotations are drawn from a seed:
:mod:`.drawing` draws one image, :mod:`.settings` holds what a split is
drawn from, :mod:`.generation` writes a split to disk once and
:mod:`.dataset` is the dataset that the configs name. :mod:`.classification`
writes one-shape images in class folders for classification.
"""
from .classification import write_shape_classification
from .dataset import SyntheticShapesDataset
from .drawing import SUPPORTED_SHAPES
from .generation import generate_shapes_dataset, make_split
from .settings import DEFAULT_CLASSES, ShapesSettings

__all__ = [
    'DEFAULT_CLASSES', 'SUPPORTED_SHAPES', 'ShapesSettings',
    'SyntheticShapesDataset', 'generate_shapes_dataset', 'make_split',
    'write_shape_classification'
]
