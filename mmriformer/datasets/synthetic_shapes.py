# Copyright (c) OpenMMLab. All rights reserved.
"""A small synthetic detection dataset of coloured shapes, made on first use.

The demo configs need data that can be trained on without any download, so
the images and their COCO annotations are drawn from a seed. Layout::

    root/annotations/<split>.json        # COCO, written last, atomically
    root/<split>/000000.jpg ...          # file_name is relative to here
    root/.synthetic_shapes_<split>.lock  # serialises concurrent writers

Objects are drawn one after another, so later objects may hide parts of
earlier ones. Every annotation holds the full (unoccluded) tight box of its
shape. An object whose visible part is less than ``MIN_VISIBLE_FRACTION`` of
its pixels is left out of the annotations (its visible remnant stays in the
image, like an unlabeled fragment in real data). Each non-empty image keeps
at least its last, fully visible object.
"""
import fcntl
import json
import os
import os.path as osp
import re
import zlib
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmdet.registry import DATASETS
from mmengine.logging import print_log

from .coco import CheckedCocoDataset

# Bump when the drawing changes, so that existing datasets are regenerated.
GENERATOR_VERSION = 1

# Shapes that can be used as class names, with the range of the ratio of
# their short to long axis (1 keeps them regular, so e.g. a circle is never
# mistaken for an ellipse).
SHAPE_ASPECT_RANGES = {
    'circle': (1.0, 1.0),
    'square': (1.0, 1.0),
    'triangle': (0.75, 1.0),
    'star': (0.85, 1.0),
    'cross': (0.8, 1.0),
    'ring': (0.8, 1.0),
    'hexagon': (1.0, 1.0),
    'ellipse': (0.35, 0.6),
}
SUPPORTED_SHAPES = tuple(SHAPE_ASPECT_RANGES)
DEFAULT_CLASSES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring')

MIN_VISIBLE_FRACTION = 0.3
# A shape whose circumscribed circle is smaller is hard to tell apart.
SMALLEST_SIZE = 8

_IMAGE_NAME = re.compile(r'^\d{6}\.jpg$')
_JPEG_QUALITY = 95
# fillPoly draws with 4 fractional bits, i.e. 1/16 px vertex precision.
_SHIFT = 4


def _regular_polygon(num_vertices: int, start: float) -> np.ndarray:
    angles = start + 2 * np.pi * np.arange(num_vertices) / num_vertices
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


_UNIT_CIRCLE = _regular_polygon(64, 0.0)


def _unit_outline(
        name: str,
        rng: np.random.Generator) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Outline of a shape inscribed in the unit circle.

    Args:
        name (str): One of ``SUPPORTED_SHAPES``.
        rng (np.random.Generator): Source of the shape's own parameters.

    Returns:
        tuple[np.ndarray, np.ndarray | None]: The outer polygon (N, 2) and
        the polygon of its hole, if any.
    """
    if name in ('circle', 'ellipse'):
        return _UNIT_CIRCLE, None
    if name == 'square':
        return _regular_polygon(4, np.pi / 4), None
    if name == 'triangle':
        return _regular_polygon(3, np.pi / 2), None
    if name == 'hexagon':
        return _regular_polygon(6, 0.0), None
    if name == 'ring':
        return _UNIT_CIRCLE, _UNIT_CIRCLE * rng.uniform(0.45, 0.65)
    if name == 'star':
        radii = np.tile([1.0, rng.uniform(0.38, 0.5)], 5)
        return _regular_polygon(10, np.pi / 2) * radii[:, None], None
    # cross: a plus sign whose arm corners touch the unit circle
    w = rng.uniform(0.18, 0.3)
    arm = np.sqrt(1 - w**2)
    return np.array([[w, arm], [-w, arm], [-w, w], [-arm, w], [-arm, -w],
                     [-w, -w], [-w, -arm], [w, -arm], [w, -w], [arm, -w],
                     [arm, w], [w, w]]), None


def _smooth_field(rng: np.random.Generator, width: int,
                  height: int) -> np.ndarray:
    """A smooth random colour field, upsampled from a tiny random grid."""
    grid_h, grid_w = rng.integers(2, 5, size=2)
    grid = rng.uniform(0, 255, size=(grid_h, grid_w, 3)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def _background(rng: np.random.Generator, width: int,
                height: int) -> np.ndarray:
    """A textured background: a gradient, plus stripes or soft blobs."""
    image = _smooth_field(rng, width, height)
    kind = rng.integers(3)
    if kind == 1:
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(8, 48)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        phase = (xs * np.cos(angle) + ys * np.sin(angle)) / period
        weight = rng.uniform(0.3, 0.7) * (0.5 + 0.5 * np.sin(
            2 * np.pi * phase + rng.uniform(0, 2 * np.pi)))
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        image = image * (1 - weight[..., None]) + colour * weight[..., None]
    elif kind == 2:
        # Blurred so that blobs stay distinguishable from the sharp objects,
        # yet make plain colour thresholding fail.
        for _ in range(rng.integers(4, 11)):
            centre = (int(rng.integers(width)), int(rng.integers(height)))
            axes = tuple(int(a) for a in rng.integers(8, 40, size=2))
            cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0,
                        360, rng.uniform(0, 255, size=3).tolist(), -1)
        sigma = rng.uniform(4, 8)
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    return image


def _place(rng: np.random.Generator, radius: float, width: int, height: int,
           boxes: List[List[int]]) -> Tuple[float, float]:
    """Pick a centre that keeps the shape inside the image.

    A few positions are tried so that a new object rarely covers most of an
    earlier one; the last try is used if all of them do.
    """
    for _ in range(10):
        cx = rng.uniform(radius, width - radius)
        cy = rng.uniform(radius, height - radius)
        too_hidden = False
        for x, y, w, h in boxes:
            inter_w = min(x + w, cx + radius) - max(x, cx - radius)
            inter_h = min(y + h, cy + radius) - max(y, cy - radius)
            if inter_w > 0 and inter_h > 0 and inter_w * inter_h > 0.5 * w * h:
                too_hidden = True
                break
        if not too_hidden:
            break
    return cx, cy


def _contrasting_colour(rng: np.random.Generator, image: np.ndarray,
                        mask: np.ndarray) -> np.ndarray:
    """A random colour that stands out from the background under ``mask``."""
    below = image[mask].mean(axis=0)
    candidates = rng.uniform(0, 255, size=(8, 3))
    distances = np.linalg.norm(candidates - below, axis=1)
    good = np.flatnonzero(distances > 90)
    return candidates[good[0] if good.size else distances.argmax()]


def _render_image(rng: np.random.Generator, width: int, height: int,
                  classes: Sequence[str], num_objects: int, min_size: int,
                  max_size: int) -> Tuple[np.ndarray, List[dict]]:
    """Draw one image.

    Returns:
        tuple[np.ndarray, list[dict]]: The BGR uint8 image and its objects,
        each a dict with ``label`` (index into ``classes``), ``bbox``
        ([x, y, w, h], tight, in pixels) and ``area`` (pixels of the full
        shape).
    """
    image = _background(rng, width, height)
    # Index of the object that owns each pixel, to measure occlusion.
    owner = np.full((height, width), -1, dtype=np.int16)
    objects = []
    for index in range(num_objects):
        label = int(rng.integers(len(classes)))
        name = classes[label]
        radius = np.exp(rng.uniform(np.log(min_size), np.log(max_size))) / 2
        outer, hole = _unit_outline(name, rng)
        aspect = rng.uniform(*SHAPE_ASPECT_RANGES[name])
        angle = rng.uniform(0, 2 * np.pi)
        cx, cy = _place(rng, radius, width, height,
                        [obj['bbox'] for obj in objects])
        rotation = np.array([[np.cos(angle), np.sin(angle)],
                             [-np.sin(angle), np.cos(angle)]])
        mask = np.zeros((height, width), dtype=np.uint8)
        for polygon, value in ((outer, 1), (hole, 0)):
            if polygon is None:
                continue
            points = (polygon * [1, aspect]) @ rotation * radius + [cx, cy]
            points = np.round(points * (1 << _SHIFT)).astype(np.int32)
            cv2.fillPoly(mask, [points], value, cv2.LINE_8, _SHIFT)
        x, y, w, h = cv2.boundingRect(mask)
        pixels = mask.astype(bool)
        colour = _contrasting_colour(rng, image, pixels)
        # A linear shading across the object, so that it is not flat.
        ys, xs = np.nonzero(pixels)
        direction = rng.uniform(0, 2 * np.pi)
        along = ((xs - cx) * np.cos(direction) +
                 (ys - cy) * np.sin(direction)) / radius
        shade = 1 + rng.uniform(0, 0.25) * along
        image[ys, xs] = colour * shade[:, None]
        owner[pixels] = index
        objects.append(
            dict(label=label, bbox=[x, y, w, h], area=int(pixels.sum())))
    visible = np.bincount(owner.ravel() + 1, minlength=num_objects + 1)[1:]
    objects = [
        obj for obj, seen in zip(objects, visible)
        if seen >= MIN_VISIBLE_FRACTION * obj['area']
    ]
    sigma = rng.uniform(2, 10)
    image += rng.standard_normal(image.shape, dtype=np.float32) * sigma
    return np.clip(np.round(image), 0, 255).astype(np.uint8), objects


def _check_args(split: str, num_images: int,
                image_size: Union[int, Sequence[int]], classes: Sequence[str],
                seed: int, empty_ratio: float, min_objects: int,
                max_objects: int, min_size: int, max_size: int) -> dict:
    """Validate the generation arguments.

    Returns:
        dict: The arguments in JSON-friendly form, as stored in the json.
    """
    if (not isinstance(split, str) or split in ('', '.', '..', 'annotations')
            or '/' in split or os.sep in split):
        raise ValueError(f'split must be a plain folder name other than '
                         f'"annotations", got {split!r}')
    if int(num_images) < 1:
        raise ValueError(f'num_images must be at least 1, got {num_images}')
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if len(image_size) != 2:
        raise ValueError('image_size must be an int or (width, height), got '
                         f'{image_size}')
    width, height = (int(s) for s in image_size)
    classes = [str(name) for name in classes]
    if not classes:
        raise ValueError('classes is empty; give at least one shape name '
                         f'from {SUPPORTED_SHAPES}')
    unknown = [name for name in classes if name not in SHAPE_ASPECT_RANGES]
    if unknown:
        raise ValueError(f'classes contains unknown shapes {unknown}; each '
                         f'class must be one of {SUPPORTED_SHAPES}')
    if len(set(classes)) != len(classes):
        raise ValueError(f'classes has duplicate names: {classes}')
    if int(seed) < 0:
        raise ValueError(f'seed must be non-negative, got {seed}')
    if not 0 <= empty_ratio <= 1:
        raise ValueError(f'empty_ratio must be in [0, 1], got {empty_ratio}')
    if not 1 <= min_objects <= max_objects:
        raise ValueError('need 1 <= min_objects <= max_objects, got '
                         f'min_objects={min_objects}, '
                         f'max_objects={max_objects}')
    if not SMALLEST_SIZE <= min_size <= max_size:
        raise ValueError(f'need {SMALLEST_SIZE} <= min_size <= max_size, got '
                         f'min_size={min_size}, max_size={max_size}')
    if min(width, height) < max_size:
        raise ValueError(f'image_size {(width, height)} is too small for '
                         f'max_size={max_size}; both sides must be at least '
                         'max_size')
    return dict(
        version=GENERATOR_VERSION,
        split=split,
        num_images=int(num_images),
        image_size=[width, height],
        classes=classes,
        seed=int(seed),
        empty_ratio=float(empty_ratio),
        min_objects=int(min_objects),
        max_objects=int(max_objects),
        min_size=int(min_size),
        max_size=int(max_size))


def _is_up_to_date(ann_file: str, img_dir: str, params: dict) -> bool:
    """Whether ``ann_file`` was made with ``params`` and its images exist."""
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except (OSError, ValueError):
        return False
    if coco.get('info', {}).get('generator') != params:
        return False
    return all(
        osp.isfile(osp.join(img_dir, img['file_name']))
        for img in coco['images'])


def _made_by_generator(ann_file: str) -> bool:
    """Whether ``ann_file`` is absent or was written by this generator."""
    try:
        with open(ann_file) as f:
            coco = json.load(f)
    except FileNotFoundError:
        return True
    except ValueError:
        return False
    return 'generator' in coco.get('info', {})


def _write_split(root: str, params: dict) -> None:
    """Draw every image of a split, then write its annotation file."""
    split = params['split']
    width, height = params['image_size']
    classes = params['classes']
    img_dir = osp.join(root, split)
    ann_file = osp.join(root, 'annotations', f'{split}.json')
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(osp.dirname(ann_file), exist_ok=True)
    # The json must never describe images that are being rewritten.
    if osp.exists(ann_file):
        os.remove(ann_file)
    print_log(
        f'Generating {params["num_images"]} synthetic images of split '
        f'"{split}" in {root}',
        logger='current')

    # The split name is part of the seed so that e.g. train and val differ.
    split_key = zlib.crc32(split.encode())
    split_rng = np.random.default_rng([params['seed'], split_key])
    num_empty = round(params['empty_ratio'] * params['num_images'])
    empty = set(
        split_rng.choice(params['num_images'], num_empty,
                         replace=False).tolist())

    images, annotations = [], []
    for index in range(params['num_images']):
        # One generator per image: image i does not depend on num_images.
        rng = np.random.default_rng([params['seed'], split_key, index])
        num_objects = 0 if index in empty else int(
            rng.integers(params['min_objects'], params['max_objects'] + 1))
        image, objects = _render_image(rng, width, height, classes,
                                       num_objects, params['min_size'],
                                       params['max_size'])
        file_name = f'{index:06d}.jpg'
        path = osp.join(img_dir, file_name)
        if not cv2.imwrite(path, image,
                           [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]):
            raise OSError(f'could not write the image {path}')
        image_id = index + 1
        images.append(
            dict(id=image_id, file_name=file_name, width=width,
                 height=height))
        for obj in objects:
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=obj['label'] + 1,
                    bbox=obj['bbox'],
                    area=obj['area'],
                    iscrowd=0))

    names = {img['file_name'] for img in images}
    for name in os.listdir(img_dir):
        if _IMAGE_NAME.match(name) and name not in names:
            os.remove(osp.join(img_dir, name))

    coco = dict(
        info=dict(
            description='mmriformer synthetic shapes', generator=params),
        images=images,
        annotations=annotations,
        categories=[
            dict(id=i + 1, name=name, supercategory='shape')
            for i, name in enumerate(classes)
        ])
    tmp_file = f'{ann_file}.tmp{os.getpid()}'
    with open(tmp_file, 'w') as f:
        json.dump(coco, f)
    os.replace(tmp_file, ann_file)


def generate_shapes_dataset(root: str,
                            split: str,
                            num_images: int,
                            image_size: Union[int, Sequence[int]] = (256,
                                                                     256),
                            classes: Sequence[str] = DEFAULT_CLASSES,
                            seed: int = 0,
                            empty_ratio: float = 0.1,
                            min_objects: int = 1,
                            max_objects: int = 6,
                            min_size: int = 20,
                            max_size: int = 100) -> str:
    """Write a split of the synthetic shapes dataset, unless it exists.

    The output depends only on the arguments (not on ``root``): the same
    arguments give byte-identical annotations and identical pixels. If
    ``root/annotations/<split>.json`` was made with the same arguments and
    its images exist, nothing is written. Concurrent callers (e.g. DDP
    ranks) are serialised by a file lock, so exactly one of them draws.

    Args:
        root (str): Folder of the dataset; created if missing.
        split (str): Name of the split, e.g. ``'train'``. Images go to
            ``root/<split>/`` and annotations to
            ``root/annotations/<split>.json``.
        num_images (int): Number of images.
        image_size (int | Sequence[int]): Image (width, height).
            Defaults to (256, 256).
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

    Returns:
        str: Path of the annotation file.
    """
    params = _check_args(split, num_images, image_size, classes, seed,
                         empty_ratio, min_objects, max_objects, min_size,
                         max_size)
    img_dir = osp.join(root, split)
    ann_file = osp.join(root, 'annotations', f'{split}.json')
    # Checked before locking, so a complete dataset on a read-only
    # file system can be used.
    if _is_up_to_date(ann_file, img_dir, params):
        return ann_file
    if not _made_by_generator(ann_file):
        raise ValueError(
            f'{ann_file} exists and was not made by the synthetic shapes '
            f'generator, so it is not overwritten. To train on your own '
            f'COCO data, also set train_dataloader.dataset.synthesize=False '
            f'and val_dataloader.dataset.synthesize=False.')
    try:
        os.makedirs(root, exist_ok=True)
        lock = open(osp.join(root, f'.synthetic_shapes_{split}.lock'), 'a')
    except OSError as err:
        raise OSError(f'Cannot write the synthetic shapes dataset to the '
                      f'folder "{root}" ({err}). Set data_root to a '
                      'writable folder.') from err
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Another process may have generated it while this one waited.
        if not _is_up_to_date(ann_file, img_dir, params):
            _write_split(root, params)
    return ann_file


@DATASETS.register_module()
class SyntheticShapesDataset(CheckedCocoDataset):
    """COCO-style dataset of synthetic shapes, generated on first use.

    The split is read from ``ann_file``, which must be
    ``annotations/<split>.json`` under ``data_root``, with
    ``data_prefix=dict(img='<split>/')``. The class names in
    ``metainfo['classes']`` pick the shapes that are drawn. See
    :func:`generate_shapes_dataset` for the generation arguments.

    Args:
        num_images (int): Number of images of the split. Defaults to 200.
        image_size (int | Sequence[int]): Image (width, height).
            Defaults to (256, 256).
        seed (int): Seed of the drawing. Defaults to 0.
        empty_ratio (float): Fraction of images without objects.
            Defaults to 0.1.
        min_objects (int): Fewest objects in a non-empty image.
            Defaults to 1.
        max_objects (int): Most objects in an image. Defaults to 6.
        min_size (int): Smallest object size in pixels. Defaults to 20.
        max_size (int): Largest object size in pixels. Defaults to 100.
        synthesize (bool): Generate the split when it is missing or stale.
            False reads an existing COCO split as it is, which is how the
            demo config trains on other data by ``--cfg-options`` alone.
            Defaults to True.
        **kwargs: Arguments of :class:`CheckedCocoDataset`.
    """

    METAINFO = {
        'classes':
        DEFAULT_CLASSES,
        # One colour per supported shape, then enough for other data read
        # with synthesize=False (mmdet's visualiser needs one per class).
        'palette': [(220, 20, 60), (0, 130, 200), (60, 180, 75),
                    (255, 200, 0), (145, 30, 180), (245, 130, 48),
                    (70, 240, 240), (128, 128, 0)] + [
                        tuple(int(c) for c in cv2.cvtColor(
                            np.uint8([[[hue, 200, 230]]]),
                            cv2.COLOR_HSV2RGB)[0, 0])
                        for hue in range(0, 180, 2)
                    ]
    }

    def __init__(self,
                 *args,
                 num_images: int = 200,
                 image_size: Union[int, Sequence[int]] = (256, 256),
                 seed: int = 0,
                 empty_ratio: float = 0.1,
                 min_objects: int = 1,
                 max_objects: int = 6,
                 min_size: int = 20,
                 max_size: int = 100,
                 synthesize: bool = True,
                 **kwargs) -> None:
        self.synthesize = synthesize
        self.generator_kwargs = dict(
            num_images=num_images,
            image_size=image_size,
            seed=seed,
            empty_ratio=empty_ratio,
            min_objects=min_objects,
            max_objects=max_objects,
            min_size=min_size,
            max_size=max_size)
        super().__init__(*args, **kwargs)

    def _split_location(self) -> Tuple[str, str]:
        """Dataset root and split name, from ``ann_file`` and
        ``data_prefix``."""
        ann_dir, ann_name = osp.split(osp.abspath(self.ann_file))
        split, ext = osp.splitext(ann_name)
        root = osp.dirname(ann_dir)
        img_dir = self.data_prefix.get('img')
        if (osp.basename(ann_dir) != 'annotations' or ext != '.json'
                or img_dir is None
                or osp.abspath(img_dir) != osp.join(root, split)):
            raise ValueError(
                'SyntheticShapesDataset needs ann_file="annotations/'
                '<split>.json" and data_prefix=dict(img="<split>/") under '
                f'data_root; got ann_file="{self.ann_file}", '
                f'data_prefix={self.data_prefix}')
        return root, split

    def load_data_list(self) -> List[dict]:
        """Generate the split if needed, then load it as COCO.

        Returns:
            list[dict]: Annotations of the images.
        """
        if not self.synthesize:
            return super().load_data_list()
        root, split = self._split_location()
        generate_shapes_dataset(
            root,
            split,
            classes=tuple(self.metainfo['classes']),
            **self.generator_kwargs)
        return super().load_data_list()
