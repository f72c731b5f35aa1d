# Copyright (c) OpenMMLab. All rights reserved.
import random
from numbers import Real
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import BaseBoxes, HorizontalBoxes
from torchvision import tv_tensors
from torchvision.transforms import v2

# How many images join the one being transformed.
NUM_OTHERS = 3


def _check_range(name: str, value: Sequence[float], low: float) -> None:
    """Raise unless ``value`` is a pair ``(a, b)`` with ``low <= a <= b``."""
    if (not isinstance(value, Sequence) or len(value) != 2
            or not all(isinstance(v, Real) for v in value)
            or not low <= value[0] <= value[1]):
        raise ValueError(f'{name} must be a pair (a, b) with {low} <= a <= '
                         f'b, got {value!r}')


@TRANSFORMS.register_module()
class DEIMMosaic(BaseTransform):
    """DEIM's mosaic: four images side by side, then a random affine.

    Each of the four images is resized (torchvision's ``Resize``: shorter
    side ``output_size``, longer side at most ``max_size``) and pasted at
    the top-left corner of one quadrant of a canvas twice the largest
    height and width, in reading order, the transformed image first.
    torchvision's ``RandomAffine`` then rotates, translates and scales the
    canvas about its centre; boxes become the enclosing box of their moved
    corners, clipped to the canvas. Degenerate boxes are left for a later
    filter (DEIM's ``SanitizeBoundingBoxes(min_size=1)``, mmdet's
    ``FilterAnnotations(min_gt_bbox_wh=(1, 1))``). Canvas and affine are
    both filled with ``fill_value`` (DEIM pads the canvas with 0 whatever
    ``fill_value`` is; its configs set ``fill_value=0``).

    Why not mmdet's ``Mosaic`` and ``RandomAffine``: ``Mosaic`` fits each
    image inside ``img_scale`` and places the four around a random centre,
    cropping them; ``RandomAffine`` rotates and scales about the top-left
    corner and drops boxes by size, area ratio and aspect ratio.

    The other three images come from one of two sources, as in DEIM:

    - ``use_cache=False`` (DEIM's configs): three dataset indices drawn
      uniformly with replacement. mmdet's ``MultiImageMixDataset`` calls
      :meth:`get_indexes` and passes their loaded results as
      ``results['mix_results']``, so the dataset must be wrapped in it.
    - ``use_cache=True``: a cache of the last resized images (this one
      included) like mmdet's ``CachedMosaic``; needs no wrapper, so it can
      sit in any pipeline, e.g. in mmcv's ``RandomChoice``. Each dataloader
      worker keeps its own cache.

    Args:
        output_size (int): The shorter side of each image before pasting.
            Defaults to 320.
        max_size (int, optional): The longest side of each image before
            pasting; must exceed ``output_size``. Defaults to None (no
            limit).
        rotation_range (float): Rotation angles are drawn from
            ``[-rotation_range, rotation_range]`` degrees. Defaults to 0.
        translation_range (Sequence[float]): Largest shifts, as fractions
            of the canvas width and height. Defaults to (0.1, 0.1).
        scaling_range (Sequence[float]): Scales are drawn from this range.
            Defaults to (0.5, 1.5).
        probability (float): The chance of applying the mosaic; otherwise
            the results pass unchanged. Defaults to 1.0.
        fill_value (int): The value of uncovered pixels. Defaults to 114.
        use_cache (bool): Take the other images from a cache instead of
            ``results['mix_results']``. Defaults to True.
        max_cached_images (int): The cache's size. Defaults to 50.
        random_pop (bool): A full cache drops a random image (never the
            newest) instead of the oldest. Defaults to True.
    """

    def __init__(self,
                 output_size: int = 320,
                 max_size: Optional[int] = None,
                 rotation_range: float = 0,
                 translation_range: Sequence[float] = (0.1, 0.1),
                 scaling_range: Sequence[float] = (0.5, 1.5),
                 probability: float = 1.0,
                 fill_value: int = 114,
                 use_cache: bool = True,
                 max_cached_images: int = 50,
                 random_pop: bool = True) -> None:
        if not isinstance(output_size, int) or output_size <= 0:
            raise ValueError(f'output_size must be a positive int, got '
                             f'{output_size!r}')
        if max_size is not None and (not isinstance(max_size, int)
                                     or max_size <= output_size):
            raise ValueError(f'max_size must be None or an int larger than '
                             f'output_size={output_size}, got {max_size!r}')
        if not isinstance(rotation_range, Real) or rotation_range < 0:
            raise ValueError(f'rotation_range must be a number >= 0 '
                             f'(degrees), got {rotation_range!r}')
        if (not isinstance(translation_range, Sequence)
                or len(translation_range) != 2 or not all(
                    isinstance(t, Real) and 0 <= t <= 1
                    for t in translation_range)):
            raise ValueError(f'translation_range must be a pair of fractions '
                             f'in [0, 1], got {translation_range!r}')
        _check_range('scaling_range', scaling_range, low=0)
        if scaling_range[0] == 0:
            raise ValueError(f'scaling_range must be positive, got '
                             f'{scaling_range!r}')
        if not isinstance(probability, Real) or not 0 <= probability <= 1:
            raise ValueError(f'probability must be in [0, 1], got '
                             f'{probability!r}')
        if not isinstance(max_cached_images, int) or max_cached_images < 1:
            raise ValueError(f'max_cached_images must be an int >= 1, got '
                             f'{max_cached_images!r}')
        self.probability = probability
        self.fill_value = fill_value
        self.use_cache = use_cache
        self.max_cached_images = max_cached_images
        self.random_pop = random_pop
        self.resize = v2.Resize(output_size, max_size=max_size)
        self.affine = v2.RandomAffine(
            degrees=rotation_range,
            translate=tuple(translation_range),
            scale=tuple(scaling_range),
            fill=fill_value)
        self.cache: List[dict] = []

    def get_indexes(self, dataset) -> List[int]:
        """The dataset indices of the other three images.

        Called by mmdet's ``MultiImageMixDataset``.

        Args:
            dataset: The wrapped dataset.

        Returns:
            list[int]: Three indices drawn uniformly with replacement; none
            with ``use_cache=True``.
        """
        if self.use_cache:
            return []
        return random.choices(range(len(dataset)), k=NUM_OTHERS)

    def _resized(self, results: dict) -> dict:
        """One image and its instances, resized, as torch tensors.

        Args:
            results (dict): An mmdet results dict with ``img``,
                ``gt_bboxes``, ``gt_bboxes_labels`` and ``gt_ignore_flags``.

        Returns:
            dict: ``img`` (tv_tensors.Image, C x H x W), ``boxes``
            (tv_tensors.BoundingBoxes, xyxy), ``labels`` and ``ignore``.
        """
        if 'gt_masks' in results:
            raise ValueError('DEIMMosaic does not move masks; load '
                             'annotations with with_mask=False')
        img = results['img']
        img = torch.from_numpy(np.ascontiguousarray(
            img.reshape(img.shape[0], img.shape[1], -1).transpose(2, 0, 1)))
        boxes = results['gt_bboxes']
        boxes = boxes.tensor if isinstance(boxes, BaseBoxes) else \
            torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        img, boxes = self.resize(
            tv_tensors.Image(img),
            tv_tensors.BoundingBoxes(
                boxes, format='XYXY', canvas_size=tuple(img.shape[-2:])))
        return dict(
            img=img,
            boxes=boxes,
            labels=np.asarray(results['gt_bboxes_labels']),
            ignore=np.asarray(results['gt_ignore_flags'], dtype=bool))

    def _others(self, first: dict, results: dict) -> List[dict]:
        """The three resized images that join ``first``.

        Args:
            first (dict): The transformed image, resized.
            results (dict): Its results dict.

        Returns:
            list[dict]: Three resized images, from the cache or from
            ``results['mix_results']``.
        """
        if self.use_cache:
            self.cache.append(first)
            if len(self.cache) > self.max_cached_images:
                # The newest entry is the image being transformed: kept.
                index = 0
                if self.random_pop:
                    index = random.randint(0, len(self.cache) - 2)
                self.cache.pop(index)
            return random.choices(self.cache, k=NUM_OTHERS)
        mix_results = results.get('mix_results')
        if mix_results is None or len(mix_results) != NUM_OTHERS:
            raise ValueError(
                'DEIMMosaic(use_cache=False) takes 3 other images from '
                "results['mix_results']: wrap the dataset in mmdet's "
                'MultiImageMixDataset, or set use_cache=True')
        return [self._resized(other) for other in mix_results]

    def transform(self, results: dict) -> dict:
        """Make the mosaic of this image and three others.

        Args:
            results (dict): An mmdet results dict (see :meth:`_resized`);
                with ``use_cache=False`` also ``mix_results``.

        Returns:
            dict: The results with the mosaic as ``img``, its
            ``img_shape``, and the instances of all four images.
        """
        # As DEIM: no draw at probability 1.
        if self.probability < 1 and random.random() > self.probability:
            return results
        first = self._resized(results)
        samples = [first] + self._others(first, results)
        height = max(sample['img'].shape[-2] for sample in samples)
        width = max(sample['img'].shape[-1] for sample in samples)
        canvas = torch.full((first['img'].shape[0], 2 * height, 2 * width),
                            self.fill_value,
                            dtype=first['img'].dtype)
        boxes = []
        corners = [(0, 0), (0, width), (height, 0), (height, width)]
        for sample, (top, left) in zip(samples, corners):
            img = sample['img']
            canvas[:, top:top + img.shape[-2], left:left + img.shape[-1]] = img
            boxes.append(sample['boxes'].as_subclass(torch.Tensor) +
                         torch.tensor([left, top, left, top]))
        canvas, boxes = self.affine(
            tv_tensors.Image(canvas),
            tv_tensors.BoundingBoxes(
                torch.cat(boxes), format='XYXY',
                canvas_size=tuple(canvas.shape[-2:])))
        img = canvas.permute(1, 2, 0).numpy()
        if results['img'].ndim == 2:
            img = img[..., 0]
        results['img'] = np.ascontiguousarray(img)
        results['img_shape'] = img.shape[:2]
        results['gt_bboxes'] = HorizontalBoxes(
            boxes.as_subclass(torch.Tensor).float())
        results['gt_bboxes_labels'] = np.concatenate(
            [sample['labels'] for sample in samples])
        results['gt_ignore_flags'] = np.concatenate(
            [sample['ignore'] for sample in samples])
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(resize={self.resize}, '
                f'affine={self.affine}, probability={self.probability}, '
                f'fill_value={self.fill_value}, use_cache={self.use_cache}, '
                f'max_cached_images={self.max_cached_images}, '
                f'random_pop={self.random_pop})')
