# Copyright (c) OpenMMLab. All rights reserved.
"""Synthetic shape classification: one shape per image, in class folders.

mmpretrain's ``CustomDataset`` reads the folders (``SPLIT/CLASS/*.png``),
so the distillation demo trains on real files with no download.
"""
import json
import os
import os.path as osp
import shutil
from typing import Sequence

import cv2
import numpy as np

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
    never touched.

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
    classes = _checked_classes(classes)
    info = dict(
        num_images=num_images,
        classes=classes,
        image_size=image_size,
        min_size=min_size,
        max_size=max_size,
        seed=seed)
    info_path = osp.join(root, INFO_FILE)
    if osp.isfile(info_path):
        with open(info_path) as f:
            old = json.load(f)
        if old == info:
            return root
        os.remove(info_path)
        for name in old['classes']:
            shutil.rmtree(osp.join(root, name), ignore_errors=True)
    elif osp.isdir(root) and os.listdir(root):
        raise FileExistsError(
            f'{root} is not empty and was not written by '
            f'write_shape_classification; give an empty or new folder.')
    for name in classes:
        os.makedirs(osp.join(root, name))
    rng = np.random.default_rng(seed)
    for index in range(num_images):
        name = classes[rng.integers(len(classes))]
        cv2.imwrite(
            osp.join(root, name, f'{index:06d}.png'),
            render_shape(rng, name, image_size, min_size, max_size))
    with open(info_path, 'w') as f:
        json.dump(info, f)
    return root
