# Copyright (c) OpenMMLab. All rights reserved.
"""Drawing one image of coloured shapes on a textured background.

Objects are drawn one after another, so later objects may hide parts of
earlier ones. Every object keeps the full (unoccluded) tight box of its
shape. An object whose visible part is less than ``MIN_VISIBLE_FRACTION`` of
its pixels is dropped from the returned objects (its visible remnant stays in
the image, like an unlabeled fragment in real data). Each non-empty image
keeps at least its last, fully visible object.

Every random number comes from the caller's generator, in a fixed order, so
that the same generator state always gives the same pixels.
"""
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

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

MIN_VISIBLE_FRACTION = 0.3
# A shape whose circumscribed circle is smaller is hard to tell apart.
SMALLEST_SIZE = 8

# fillPoly draws with 4 fractional bits, i.e. 1/16 px vertex precision.
_SHIFT = 4


def _regular_polygon(num_vertices: int, start: float) -> np.ndarray:
    """Vertices of a regular polygon inscribed in the unit circle.

    Args:
        num_vertices (int): Number of vertices.
        start (float): Angle of the first vertex, in radians.

    Returns:
        np.ndarray: The vertices, (num_vertices, 2).
    """
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


def _background(rng: np.random.Generator, width: int,
                height: int) -> np.ndarray:
    """A textured background: a gradient, plus stripes or soft blobs.

    Args:
        rng (np.random.Generator): Source of the texture.
        width (int): Width of the image.
        height (int): Height of the image.

    Returns:
        np.ndarray: The background, (height, width, 3) float32.
    """
    # The gradient: a tiny random colour grid, upsampled smoothly.
    grid_h, grid_w = rng.integers(2, 5, size=2)
    grid = rng.uniform(0, 255, size=(grid_h, grid_w, 3)).astype(np.float32)
    image = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
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

    Args:
        rng (np.random.Generator): Source of the positions.
        radius (float): Radius of the circle around the shape.
        width (int): Width of the image.
        height (int): Height of the image.
        boxes (list[list[int]]): [x, y, w, h] of the objects drawn so far.

    Returns:
        tuple[float, float]: The centre (x, y).
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
    """A random colour that stands out from the image under ``mask``.

    Args:
        rng (np.random.Generator): Source of the candidate colours.
        image (np.ndarray): The image so far, (H, W, 3).
        mask (np.ndarray): Boolean (H, W) mask of the object.

    Returns:
        np.ndarray: The colour, (3,).
    """
    below = image[mask].mean(axis=0)
    candidates = rng.uniform(0, 255, size=(8, 3))
    distances = np.linalg.norm(candidates - below, axis=1)
    good = np.flatnonzero(distances > 90)
    return candidates[good[0] if good.size else distances.argmax()]


def _random_shape_mask(rng: np.random.Generator, name: str, min_size: int,
                       max_size: int, width: int, height: int,
                       boxes: List[List[int]]) -> Tuple[np.ndarray, tuple]:
    """Size, shape, turn and place one object and rasterise it.

    Args:
        rng (np.random.Generator): Source of the object's parameters.
        name (str): Its shape, one of ``SUPPORTED_SHAPES``.
        min_size (int): Smallest diameter of the circle around it.
        max_size (int): Largest such diameter.
        width (int): Width of the image.
        height (int): Height of the image.
        boxes (list[list[int]]): [x, y, w, h] of the objects drawn so far.

    Returns:
        tuple[np.ndarray, tuple]: The uint8 (height, width) mask of the
        object and its circle as (cx, cy, radius).
    """
    radius = np.exp(rng.uniform(np.log(min_size), np.log(max_size))) / 2
    outer, hole = _unit_outline(name, rng)
    aspect = rng.uniform(*SHAPE_ASPECT_RANGES[name])
    angle = rng.uniform(0, 2 * np.pi)
    cx, cy = _place(rng, radius, width, height, boxes)
    rotation = np.array([[np.cos(angle), np.sin(angle)],
                         [-np.sin(angle), np.cos(angle)]])
    mask = np.zeros((height, width), dtype=np.uint8)
    for polygon, value in ((outer, 1), (hole, 0)):
        if polygon is None:
            continue
        points = (polygon * [1, aspect]) @ rotation * radius + [cx, cy]
        points = np.round(points * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [points], value, cv2.LINE_8, _SHIFT)
    return mask, (cx, cy, radius)


def _paint(rng: np.random.Generator, image: np.ndarray, pixels: np.ndarray,
           circle: tuple) -> None:
    """Fill the object's pixels with a shaded colour, in place.

    Args:
        rng (np.random.Generator): Source of the colour and shading.
        image (np.ndarray): The float32 (H, W, 3) image to paint on.
        pixels (np.ndarray): Boolean (H, W) mask of the object.
        circle (tuple): (cx, cy, radius) of the circle around the object.
    """
    cx, cy, radius = circle
    colour = _contrasting_colour(rng, image, pixels)
    # A linear shading across the object, so that it is not flat.
    ys, xs = np.nonzero(pixels)
    direction = rng.uniform(0, 2 * np.pi)
    along = ((xs - cx) * np.cos(direction) +
             (ys - cy) * np.sin(direction)) / radius
    shade = 1 + rng.uniform(0, 0.25) * along
    image[ys, xs] = colour * shade[:, None]


def _mostly_visible(objects: List[dict], owner: np.ndarray) -> List[dict]:
    """The objects that enough of their pixels still show.

    Args:
        objects (list[dict]): The objects in drawing order, with ``area``.
        owner (np.ndarray): Index of the object on top of each pixel, -1 for
            background.

    Returns:
        list[dict]: The objects of which at least ``MIN_VISIBLE_FRACTION``
        is visible.
    """
    visible = np.bincount(owner.ravel() + 1, minlength=len(objects) + 1)[1:]
    return [
        obj for obj, seen in zip(objects, visible)
        if seen >= MIN_VISIBLE_FRACTION * obj['area']
    ]


def render_image(rng: np.random.Generator, width: int, height: int,
                 classes: Sequence[str], num_objects: int, min_size: int,
                 max_size: int) -> Tuple[np.ndarray, List[dict]]:
    """Draw one image.

    Args:
        rng (np.random.Generator): Source of every random choice.
        width (int): Width of the image.
        height (int): Height of the image.
        classes (Sequence[str]): Shapes to draw, each from
            ``SUPPORTED_SHAPES``; labels index into it.
        num_objects (int): Number of objects drawn (some may be hidden).
        min_size (int): Smallest diameter of the circle around an object.
        max_size (int): Largest such diameter.

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
        mask, circle = _random_shape_mask(rng, classes[label], min_size,
                                          max_size, width, height,
                                          [obj['bbox'] for obj in objects])
        x, y, w, h = cv2.boundingRect(mask)
        pixels = mask.astype(bool)
        _paint(rng, image, pixels, circle)
        owner[pixels] = index
        objects.append(
            dict(label=label, bbox=[x, y, w, h], area=int(pixels.sum())))
    objects = _mostly_visible(objects, owner)
    sigma = rng.uniform(2, 10)
    image += rng.standard_normal(image.shape, dtype=np.float32) * sigma
    return np.clip(np.round(image), 0, 255).astype(np.uint8), objects
