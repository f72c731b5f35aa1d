# Copyright (c) OpenMMLab. All rights reserved.
"""Synthetic shape classification: one shape per image, in class folders.

mmpretrain's ``CustomDataset`` reads the folders (``SPLIT/CLASS/*.png``),
so the distillation demo trains on real files with no download.
"""
import os
import os.path as osp
import shutil
from typing import Optional, Sequence

import cv2
import numpy as np

from ..write_once import write_once
from .drawing import _random_shape_mask
from .settings import _checked_classes

INFO_FILE = 'shapes_info.json'


def render_shape(rng: np.random.Generator, name: str, image_size: int,
                 min_size: int, max_size: int) -> np.ndarray:
    """One bright shape, turned, sized and placed as in the detection images,
    on a dark background, with pixel noise. Grey, so that the classes
    differ by form only and a small model learns them in minutes.

    Args:
        rng (np.random.Generator): Source of every random choice.
        name (str): The shape, from ``SUPPORTED_SHAPES``.
        image_size (int): Side of the square image.
        min_size (int): Smallest diameter of the shape.
        max_size (int): Largest diameter of the shape.

    Returns:
        np.ndarray: The uint8 (image_size, image_size, 3) image.
    """
    image = np.full((image_size, image_size), rng.uniform(0, 100),
                    np.float32)
    mask, _ = _random_shape_mask(rng, name, min_size, max_size, image_size,
                                 image_size, [])
    image[mask.astype(bool)] = rng.uniform(155, 255)
    image += rng.standard_normal(image.shape, dtype=np.float32) * 8
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return np.repeat(image[..., None], 3, axis=-1)


def _draw_classes(root: str, info: dict, previous: Optional[dict]) -> dict:
    """Draw the images of a split into its class folders.

    Args:
        root (str): The split's folder.
        info (dict): The settings, as :func:`write_shape_classification`
            records them.
        previous (dict, optional): The settings of the split being
            replaced; None if there is none.

    Returns:
        dict: ``info``, the split's record.

    Raises:
        FileExistsError: ``root`` holds files this module did not write.
    """
    if previous is not None:
        for name in previous['classes']:
            shutil.rmtree(osp.join(root, name), ignore_errors=True)
    elif osp.isdir(root) and os.listdir(root):
        raise FileExistsError(
            f'{root} is not empty and was not written by '
            f'write_shape_classification; give an empty or new folder.')
    classes = info['classes']
    for name in classes:
        os.makedirs(osp.join(root, name))
    rng = np.random.default_rng(info['seed'])
    for index in range(info['num_images']):
        name = classes[rng.integers(len(classes))]
        path = osp.join(root, name, f'{index:06d}.png')
        if not cv2.imwrite(
                path,
                render_shape(rng, name, info['image_size'], info['min_size'],
                             info['max_size'])):
            raise OSError(f'could not write the image {path}')
    return info


def write_shape_classification(root: str,
                               num_images: int,
                               classes: Sequence[str],
                               image_size: int = 32,
                               min_size: int = 12,
                               max_size: int = 30,
                               seed: int = 0) -> str:
    """Draw a split of one-shape images into ``root/CLASS/NNNNNN.png``.

    A folder drawn before with the same settings is kept as it is; one with
    other settings is drawn again. A folder this function did not write is
    never touched. ``root/shapes_info.json`` is the split's record in
    :func:`~mmriformer.datasets.write_once.write_once`: written last and
    atomically, and concurrent callers are serialised by the lock file
    ``.NAME.lock`` next to ``root``, so exactly one of them draws.

    Args:
        root (str): The split's folder.
        num_images (int): Number of images, labels drawn uniformly.
        classes (Sequence[str]): Shape names (``SUPPORTED_SHAPES``).
        image_size (int): Side of the square images. Defaults to 32.
        min_size (int): Smallest diameter of a shape. Defaults to 12.
        max_size (int): Largest diameter of a shape. Defaults to 30.
        seed (int): Seed of every random choice. Defaults to 0.

    Returns:
        str: ``root``.

    Raises:
        FileExistsError: ``root`` holds files this function did not write.
    """
    info = dict(
        num_images=num_images,
        classes=_checked_classes(classes),
        image_size=image_size,
        min_size=min_size,
        max_size=max_size,
        seed=seed)
    folder, name = osp.split(osp.abspath(root))
    write_once(
        osp.join(root, INFO_FILE),
        info,
        lambda previous: _draw_classes(root, info, previous),
        lock_file=osp.join(folder, f'.{name}.lock'),
        fix='Give write_shape_classification an empty or new folder.')
    return root
