# Copyright (c) OpenMMLab. All rights reserved.
"""The settings that a split of synthetic shapes is drawn from."""
from dataclasses import dataclass
from typing import List, Sequence, Union

from .drawing import SMALLEST_SIZE, SUPPORTED_SHAPES

DEFAULT_CLASSES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring')


def _width_height(image_size: Union[int, Sequence[int]]) -> List[int]:
    """``image_size`` as [width, height].

    Args:
        image_size (int | Sequence[int]): A side, or (width, height).

    Returns:
        list[int]: [width, height].
    """
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if len(image_size) != 2:
        raise ValueError('image_size must be an int or (width, height), got '
                         f'{image_size}')
    return [int(side) for side in image_size]


def _checked_classes(classes: Sequence[str]) -> List[str]:
    """``classes`` as a list of names, each a supported shape, once.

    Args:
        classes (Sequence[str]): Class names.

    Returns:
        list[str]: The names.
    """
    classes = [str(name) for name in classes]
    if not classes:
        raise ValueError('classes is empty; give at least one shape name '
                         f'from {SUPPORTED_SHAPES}')
    unknown = [name for name in classes if name not in SUPPORTED_SHAPES]
    if unknown:
        raise ValueError(f'classes contains unknown shapes {unknown}; each '
                         f'class must be one of {SUPPORTED_SHAPES}')
    if len(set(classes)) != len(classes):
        raise ValueError(f'classes has duplicate names: {classes}')
    return classes


@dataclass
class ShapesSettings:
    """How the images of a split are drawn.

    The values are checked and turned into JSON types on creation: they are
    stored in the annotation file, and a file whose stored settings differ
    is drawn again.

    Args:
        num_images (int): Number of images. Defaults to 200.
        image_size (int | Sequence[int]): Image (width, height); kept as
            [width, height]. Defaults to (256, 256).
        classes (Sequence[str]): Class names, each a shape from
            ``SUPPORTED_SHAPES``; category ids are 1..K in this order.
            Defaults to ``DEFAULT_CLASSES``.
        seed (int): Seed of the drawing. Defaults to 0.
        empty_ratio (float): Fraction of images without objects.
            Defaults to 0.1.
        min_objects (int): Fewest objects drawn in a non-empty image.
            Defaults to 1.
        max_objects (int): Most objects drawn in an image. Defaults to 6.
        min_size (int): Smallest diameter, in pixels, of the circle that
            encloses a shape. Defaults to 20.
        max_size (int): Largest such diameter. Defaults to 100.
    """
    # The order of the fields is the order in the annotation file.
    num_images: int = 200
    image_size: Union[int, Sequence[int]] = (256, 256)
    classes: Sequence[str] = DEFAULT_CLASSES
    seed: int = 0
    empty_ratio: float = 0.1
    min_objects: int = 1
    max_objects: int = 6
    min_size: int = 20
    max_size: int = 100

    def __post_init__(self) -> None:
        if int(self.num_images) < 1:
            raise ValueError(
                f'num_images must be at least 1, got {self.num_images}')
        self.image_size = _width_height(self.image_size)
        self.classes = _checked_classes(self.classes)
        if int(self.seed) < 0:
            raise ValueError(f'seed must be non-negative, got {self.seed}')
        if not 0 <= self.empty_ratio <= 1:
            raise ValueError(
                f'empty_ratio must be in [0, 1], got {self.empty_ratio}')
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError('need 1 <= min_objects <= max_objects, got '
                             f'min_objects={self.min_objects}, '
                             f'max_objects={self.max_objects}')
        if not SMALLEST_SIZE <= self.min_size <= self.max_size:
            raise ValueError(
                f'need {SMALLEST_SIZE} <= min_size <= max_size, got '
                f'min_size={self.min_size}, max_size={self.max_size}')
        if min(self.image_size) < self.max_size:
            raise ValueError(
                f'image_size {tuple(self.image_size)} is too small for '
                f'max_size={self.max_size}; both sides must be at least '
                'max_size')
        self.num_images = int(self.num_images)
        self.seed = int(self.seed)
        self.empty_ratio = float(self.empty_ratio)
        self.min_objects = int(self.min_objects)
        self.max_objects = int(self.max_objects)
        self.min_size = int(self.min_size)
        self.max_size = int(self.max_size)
