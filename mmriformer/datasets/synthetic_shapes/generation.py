# Copyright (c) OpenMMLab. All rights reserved.
"""Writing a split of synthetic shapes to disk, once per set of settings.

Layout::

    root/annotations/<split>.json        # COCO, written last, atomically
    root/<split>/000000.jpg ...          # file_name is relative to here
    root/.synthetic_shapes_<split>.lock  # serialises concurrent writers

The annotation file stores the settings it was drawn from; a split whose
file holds the same settings and whose images exist is used as it is.
"""
import os
import os.path as osp
import re
import zlib
from dataclasses import asdict
from typing import Iterator, List, Tuple

import cv2
import numpy as np
from mmengine.logging import print_log

from ..write_once import write_once
from .drawing import GENERATOR_VERSION, render_image
from .settings import ShapesSettings

_IMAGE_NAME = re.compile(r'^\d{6}\.jpg$')
_JPEG_QUALITY = 95


def _check_split(split: str) -> None:
    """Raise unless ``split`` can name a folder next to ``annotations``.

    Args:
        split (str): Name of the split.
    """
    if (not isinstance(split, str) or split in ('', '.', '..', 'annotations')
            or '/' in split or os.sep in split):
        raise ValueError(f'split must be a plain folder name other than '
                         f'"annotations", got {split!r}')


def _split_paths(root: str, split: str) -> Tuple[str, str]:
    """The image folder and the annotation file of a split.

    Args:
        root (str): Folder of the dataset.
        split (str): Name of the split.

    Returns:
        tuple[str, str]: The image folder and the annotation file.
    """
    return (osp.join(root, split),
            osp.join(root, 'annotations', f'{split}.json'))


def _generator_info(split: str, settings: ShapesSettings) -> dict:
    """What the annotation file stores of how it was made.

    Args:
        split (str): Name of the split.
        settings (ShapesSettings): Its settings.

    Returns:
        dict: The drawing version, the split and the settings.
    """
    return dict(version=GENERATOR_VERSION, split=split, **asdict(settings))


def _images_exist(coco: dict, img_dir: str) -> bool:
    """Whether every image that ``coco`` lists is in ``img_dir``.

    Args:
        coco (dict): The annotations of a split.
        img_dir (str): The folder of its images.

    Returns:
        bool: Whether they all exist.
    """
    return all(
        osp.isfile(osp.join(img_dir, img['file_name']))
        for img in coco['images'])


def _draw_split(split: str,
                settings: ShapesSettings) -> Iterator[Tuple[np.ndarray,
                                                            List[dict]]]:
    """Draw the images of a split, one at a time.

    Args:
        split (str): Name of the split; part of the seed.
        settings (ShapesSettings): How to draw.

    Yields:
        tuple[np.ndarray, list[dict]]: Each image and its objects, as
        :func:`render_image` returns them.
    """
    width, height = settings.image_size
    # The split name is part of the seed so that e.g. train and val differ.
    split_key = zlib.crc32(split.encode())
    split_rng = np.random.default_rng([settings.seed, split_key])
    num_empty = round(settings.empty_ratio * settings.num_images)
    empty = set(
        split_rng.choice(settings.num_images, num_empty,
                         replace=False).tolist())
    for index in range(settings.num_images):
        # One generator per image: image i does not depend on num_images.
        rng = np.random.default_rng([settings.seed, split_key, index])
        num_objects = 0 if index in empty else int(
            rng.integers(settings.min_objects, settings.max_objects + 1))
        yield render_image(rng, width, height, settings.classes,
                           num_objects, settings.min_size, settings.max_size)


def _image_name(index: int) -> str:
    """File name of the image at ``index`` of a split."""
    return f'{index:06d}.jpg'


def _coco(info: dict, settings: ShapesSettings,
          objects: List[List[dict]]) -> dict:
    """The COCO annotations of a split.

    Args:
        info (dict): What the file stores of how it was made.
        settings (ShapesSettings): How the split was drawn.
        objects (list[list[dict]]): The objects of each image.

    Returns:
        dict: The COCO dataset; image ids are 1..N in drawing order.
    """
    width, height = settings.image_size
    images, annotations = [], []
    for index, image_objects in enumerate(objects):
        image_id = index + 1
        images.append(
            dict(
                id=image_id,
                file_name=_image_name(index),
                width=width,
                height=height))
        for obj in image_objects:
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=obj['label'] + 1,
                    bbox=obj['bbox'],
                    area=obj['area'],
                    iscrowd=0))
    return dict(
        info=dict(description='mmriformer synthetic shapes', generator=info),
        images=images,
        annotations=annotations,
        categories=[
            dict(id=i + 1, name=name, supercategory='shape')
            for i, name in enumerate(settings.classes)
        ])


def _write_images(root: str, split: str, settings: ShapesSettings) -> dict:
    """Draw every image of a split into its folder.

    Args:
        root (str): Folder of the dataset.
        split (str): Name of the split.
        settings (ShapesSettings): How to draw.

    Returns:
        dict: The COCO annotations of the split, settings included.
    """
    img_dir, _ = _split_paths(root, split)
    os.makedirs(img_dir, exist_ok=True)
    print_log(
        f'Generating {settings.num_images} synthetic images of split '
        f'"{split}" in {root}',
        logger='current')

    objects = []
    for index, (image, image_objects) in enumerate(
            _draw_split(split, settings)):
        path = osp.join(img_dir, _image_name(index))
        if not cv2.imwrite(path, image,
                           [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]):
            raise OSError(f'could not write the image {path}')
        objects.append(image_objects)

    # Images left over from an earlier, longer split.
    names = {_image_name(index) for index in range(settings.num_images)}
    for name in os.listdir(img_dir):
        if _IMAGE_NAME.match(name) and name not in names:
            os.remove(osp.join(img_dir, name))
    return _coco(_generator_info(split, settings), settings, objects)


def make_split(root: str, split: str, settings: ShapesSettings) -> str:
    """Write a split of the synthetic shapes dataset, unless it exists.

    The output depends only on ``split`` and ``settings`` (not on
    ``root``): they give byte-identical annotations and identical pixels. If
    ``root/annotations/<split>.json`` was made with the same settings and
    its images exist, nothing is written. The annotation file is the
    split's record in :func:`~mmriformer.datasets.write_once.write_once`:
    written last and atomically, and concurrent callers (e.g. DDP ranks)
    are serialised by a lock file, so exactly one of them draws.

    Args:
        root (str): Folder of the dataset; created if missing.
        split (str): Name of the split, e.g. ``'train'``. Images go to
            ``root/<split>/`` and annotations to
            ``root/annotations/<split>.json``.
        settings (ShapesSettings): How to draw.

    Returns:
        str: Path of the annotation file.

    Raises:
        ValueError: The annotation file exists and was not made by this
            generator.
        OSError: ``root`` cannot be written.
    """
    _check_split(split)
    img_dir, ann_file = _split_paths(root, split)
    write_once(
        ann_file,
        _generator_info(split, settings),
        lambda previous: _write_images(root, split, settings),
        lock_file=osp.join(root, f'.synthetic_shapes_{split}.lock'),
        settings_key=('info', 'generator'),
        is_complete=lambda coco: _images_exist(coco, img_dir),
        fix='Set data_root to a writable folder of its own, or, to train '
        'on your own COCO data, set train_dataloader.dataset.synthesize='
        'False and val_dataloader.dataset.synthesize=False.')
    return ann_file


def generate_shapes_dataset(root: str, split: str, *args, **kwargs) -> str:
    """:func:`make_split` with the settings given as arguments.

    Args:
        root (str): Folder of the dataset; created if missing.
        split (str): Name of the split, e.g. ``'train'``.
        *args: Fields of :class:`ShapesSettings` in their order, i.e.
            ``num_images`` first.
        **kwargs: Fields of :class:`ShapesSettings` by name.

    Returns:
        str: Path of the annotation file.
    """
    return make_split(root, split, ShapesSettings(*args, **kwargs))
