# Copyright (c) OpenMMLab. All rights reserved.
"""Writing a split of synthetic shapes to disk, once per set of settings.

Layout::

    root/annotations/<split>.json        # COCO, written last, atomically
    root/<split>/000000.jpg ...          # file_name is relative to here
    root/.synthetic_shapes_<split>.lock  # serialises concurrent writers

The annotation file stores the settings it was drawn from; a split whose
file holds the same settings and whose images exist is used as it is.
"""
import json
import os
import os.path as osp
import re
import zlib
from contextlib import contextmanager
from dataclasses import asdict
from typing import Iterator, List, Tuple

import cv2
import numpy as np
from filelock import FileLock
from mmengine.logging import print_log

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


def _is_up_to_date(ann_file: str, img_dir: str, info: dict) -> bool:
    """Whether ``ann_file`` was made as ``info`` says and its images exist.

    Args:
        ann_file (str): The annotation file.
        img_dir (str): The folder of its images.
        info (dict): What the file should store of how it was made.

    Returns:
        bool: Whether the split can be used as it is.
    """
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except (OSError, ValueError):
        return False
    if coco.get('info', {}).get('generator') != info:
        return False
    return all(
        osp.isfile(osp.join(img_dir, img['file_name']))
        for img in coco['images'])


def _made_by_generator(ann_file: str) -> bool:
    """Whether ``ann_file`` is absent or was written by this generator.

    Args:
        ann_file (str): The annotation file.

    Returns:
        bool: Whether it may be overwritten.
    """
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except FileNotFoundError:
        return True
    except ValueError:
        return False
    return 'generator' in coco.get('info', {})


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


def _write_split(root: str, split: str, settings: ShapesSettings) -> None:
    """Draw every image of a split, then write its annotation file.

    Args:
        root (str): Folder of the dataset.
        split (str): Name of the split.
        settings (ShapesSettings): How to draw.
    """
    img_dir, ann_file = _split_paths(root, split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(osp.dirname(ann_file), exist_ok=True)
    # The json must never describe images that are being rewritten.
    if osp.exists(ann_file):
        os.remove(ann_file)
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

    coco = _coco(_generator_info(split, settings), settings, objects)
    tmp_file = f'{ann_file}.tmp{os.getpid()}'
    with open(tmp_file, 'w') as f:
        json.dump(coco, f)
    os.replace(tmp_file, ann_file)


@contextmanager
def _split_lock(root: str, split: str) -> Iterator[None]:
    """Hold the lock file of a split, so that one process draws it.

    Args:
        root (str): Folder of the dataset; created if missing.
        split (str): Name of the split.
    """
    try:
        os.makedirs(root, exist_ok=True)
        lock = FileLock(osp.join(root, f'.synthetic_shapes_{split}.lock'))
        lock.acquire()
    except OSError as err:
        raise OSError(f'Cannot write the synthetic shapes dataset to the '
                      f'folder "{root}" ({err}). Set data_root to a '
                      'writable folder.') from err
    try:
        yield
    finally:
        lock.release()


def make_split(root: str, split: str, settings: ShapesSettings) -> str:
    """Write a split of the synthetic shapes dataset, unless it exists.

    The output depends only on ``split`` and ``settings`` (not on
    ``root``): they give byte-identical annotations and identical pixels. If
    ``root/annotations/<split>.json`` was made with the same settings and
    its images exist, nothing is written. Concurrent callers (e.g. DDP
    ranks) are serialised by a file lock, so exactly one of them draws.

    Args:
        root (str): Folder of the dataset; created if missing.
        split (str): Name of the split, e.g. ``'train'``. Images go to
            ``root/<split>/`` and annotations to
            ``root/annotations/<split>.json``.
        settings (ShapesSettings): How to draw.

    Returns:
        str: Path of the annotation file.
    """
    _check_split(split)
    img_dir, ann_file = _split_paths(root, split)
    info = _generator_info(split, settings)
    # Checked before locking, so a complete dataset on a read-only
    # file system can be used.
    if _is_up_to_date(ann_file, img_dir, info):
        return ann_file
    if not _made_by_generator(ann_file):
        raise ValueError(
            f'{ann_file} exists and was not made by the synthetic shapes '
            f'generator, so it is not overwritten. To train on your own '
            f'COCO data, also set train_dataloader.dataset.synthesize=False '
            f'and val_dataloader.dataset.synthesize=False.')
    with _split_lock(root, split):
        # Another process may have generated it while this one waited.
        if not _is_up_to_date(ann_file, img_dir, info):
            _write_split(root, split, settings)
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
