# Copyright (c) OpenMMLab. All rights reserved.
from numbers import Real
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes, autocast_box_type
from torchvision import tv_tensors
from torchvision.transforms import v2

# Keys of mmdet's results dict that hold one entry per instance; they are
# indexed like the boxes. gt_masks is cropped as well, see below.
INSTANCE_KEYS = ('gt_bboxes_labels', 'gt_ignore_flags', 'gt_instances_ids')


def _instance_index(sample: dict) -> torch.Tensor:
    """Labels getter for ``SanitizeBoundingBoxes``: the boxes' indices.

    A module-level function and not a lambda, so that the transform can be
    pickled into dataloader workers.
    """
    return sample['index']


@TRANSFORMS.register_module()
class RandomIoUCrop(BaseTransform):
    """RT-DETR's IoU crop: torchvision's ``RandomIoUCrop`` and sanitizing.

    The official RT-DETR applies ``torchvision.transforms.v2.RandomIoUCrop``
    with probability ``prob`` (its wrapper draws ``torch.rand(1) >= p`` to
    skip) and then ``SanitizeBoundingBoxes(min_size=1)``. This transform
    calls both torchvision transforms on an mmdet results dict, so with the
    same torch seed it crops the same window and keeps the same boxes.

    Unlike mmdet's ``MinIoURandomCrop``, which needs every box to overlap
    the crop by the sampled minimum IoU, torchvision needs only one box
    among those whose centre lies in the crop; boxes whose centre lies
    outside it are removed. On crowded images with small objects the
    every-box rule never meets a minimum IoU above 0, so mmdet only crops
    when it draws its unconstrained IoU-0 mode; this one meets the drawn
    IoU with one large box.

    Crowd boxes (``gt_ignore_flags`` True) do not steer the sampler, as the
    official dataset drops them when loading; they are cropped and kept or
    removed by the same centre rule as the other boxes. An image without
    (non-crowd) boxes is left as it is, and an image whose boxes are all
    removed keeps its crop with empty annotations. The sanitizing only runs
    after a crop: degenerate boxes of an uncropped image are left to
    ``FilterAnnotations``.

    Required Keys:

    - img (np.ndarray): (H, W, C) or (H, W), any dtype and channel order.
    - gt_bboxes (HorizontalBoxes | np.ndarray): (N, 4), xyxy in pixels.
    - gt_bboxes_labels (np.ndarray): (N, ) (optional)
    - gt_ignore_flags (np.ndarray): (N, ) bool (optional)
    - gt_instances_ids (np.ndarray): (N, ) (optional)
    - gt_masks (BitmapMasks | PolygonMasks): N masks of (H, W) (optional)
    - gt_seg_map (np.ndarray): (H, W) (optional)

    Modified Keys:

    - img, img_shape, gt_bboxes and the optional keys above.
    - homography_matrix (added, or composed with the crop's translation)

    Args:
        prob (float): Probability of trying a crop (the official ``p``).
            Defaults to 0.8.
        min_scale (float): Smallest crop side, as a fraction of the image
            side. Defaults to 0.3.
        max_scale (float): Largest crop side, as a fraction of the image
            side. Defaults to 1.0.
        min_aspect_ratio (float): Smallest crop width / height.
            Defaults to 0.5.
        max_aspect_ratio (float): Largest crop width / height.
            Defaults to 2.0.
        sampler_options (Sequence[float]): Minimum IoUs, one drawn per
            attempt; a value >= 1 means "leave the image as it is".
            Defaults to (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0).
        trials (int): Crops tried per drawn minimum IoU. Defaults to 40.
        min_size (float): ``SanitizeBoundingBoxes`` removes cropped boxes
            narrower or shorter than this. Defaults to 1.0.
        min_area (float): ... and those of a smaller area. Defaults to 1.0.
    """

    def __init__(self,
                 prob: float = 0.8,
                 min_scale: float = 0.3,
                 max_scale: float = 1.0,
                 min_aspect_ratio: float = 0.5,
                 max_aspect_ratio: float = 2.0,
                 sampler_options: Sequence[float] = (0.0, 0.1, 0.3, 0.5,
                                                     0.7, 0.9, 1.0),
                 trials: int = 40,
                 min_size: float = 1.0,
                 min_area: float = 1.0) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        if not 0 < min_scale <= max_scale <= 1:
            raise ValueError('need 0 < min_scale <= max_scale <= 1, got '
                             f'min_scale={min_scale}, max_scale={max_scale}')
        if not 0 < min_aspect_ratio <= max_aspect_ratio:
            raise ValueError(
                'need 0 < min_aspect_ratio <= max_aspect_ratio, got '
                f'{min_aspect_ratio} and {max_aspect_ratio}')
        if not (isinstance(trials, int) and trials >= 1):
            raise ValueError(f'trials must be an int >= 1, got {trials}')
        options = list(sampler_options)
        if not all(isinstance(o, Real) for o in options):
            raise ValueError(
                f'sampler_options must be numbers, got {sampler_options}')
        # torchvision only stops drawing when an option >= 1 comes up or a
        # crop qualifies; without one it would loop forever on an image
        # without boxes.
        if not any(o >= 1 for o in options):
            raise ValueError(
                'sampler_options needs a value >= 1 (keep the image), or '
                'an image without boxes would be sampled forever; got '
                f'{sampler_options}')
        self.prob = prob
        self.crop = v2.RandomIoUCrop(min_scale, max_scale, min_aspect_ratio,
                                     max_aspect_ratio, options, trials)
        # torchvision checks min_size and min_area itself.
        self.sanitize = v2.SanitizeBoundingBoxes(
            min_size, min_area, labels_getter=_instance_index)

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        """Crop the image and its annotations, maybe.

        Args:
            results (dict): mmdet's results dict, with the keys above.

        Returns:
            dict: The same dict, cropped or unchanged.
        """
        if 'gt_bboxes' not in results:
            raise KeyError('RandomIoUCrop needs gt_bboxes: put it after '
                           'LoadAnnotations(with_bbox=True)')
        boxes = results['gt_bboxes']
        if not isinstance(boxes, HorizontalBoxes):
            raise TypeError('RandomIoUCrop crops horizontal boxes only, got '
                            f'{type(boxes).__name__}')
        # The official wrapper's draw, so that the random streams match.
        if torch.rand(1) >= self.prob:
            return results

        img = results['img']
        height, width = img.shape[:2]
        xyxy = boxes.tensor
        crowd = torch.from_numpy(np.asarray(
            results.get('gt_ignore_flags', np.zeros(len(xyxy))), bool))
        # (C, H, W) view of the image (C is 1 for a grayscale (H, W) one);
        # torch cannot view negative strides.
        image = tv_tensors.Image(
            torch.from_numpy(np.ascontiguousarray(img)).reshape(
                height, width, -1).permute(2, 0, 1))
        params = self.crop.make_params([
            image,
            tv_tensors.BoundingBoxes(
                xyxy[~crowd], format='XYXY', canvas_size=(height, width))
        ])
        if not params:  # the "keep the image" option was drawn
            return results

        within = self._centres_in_crop(xyxy, params)
        within[~crowd] = params['is_within_crop_area']
        cropped = self.crop.transform(
            tv_tensors.BoundingBoxes(
                xyxy, format='XYXY', canvas_size=(height, width)),
            dict(params, is_within_crop_area=within))
        kept = self.sanitize(
            dict(boxes=cropped, index=torch.arange(len(xyxy))))
        keep = kept['index'].numpy()

        top, left = params['top'], params['left']
        bottom, right = top + params['height'], left + params['width']
        results['img'] = np.ascontiguousarray(
            self.crop.transform(image, params).permute(1, 2, 0).numpy()
        ).reshape((params['height'], params['width']) + img.shape[2:])
        results['img_shape'] = results['img'].shape[:2]
        results['gt_bboxes'] = HorizontalBoxes(
            kept['boxes'].as_subclass(torch.Tensor))
        for key in INSTANCE_KEYS:
            if key in results:
                results[key] = results[key][keep]
        if 'gt_masks' in results:
            results['gt_masks'] = results['gt_masks'].crop(
                np.array([left, top, right, bottom]))[keep]
        if 'gt_seg_map' in results:
            results['gt_seg_map'] = results['gt_seg_map'][top:bottom,
                                                          left:right]
        self._record_homography_matrix(results, left, top)
        return results

    @staticmethod
    def _centres_in_crop(xyxy: torch.Tensor, params: dict) -> torch.Tensor:
        """Which boxes have their centre strictly inside the crop.

        torchvision decides this for the boxes it samples with; this is
        its rule, for the crowd boxes that it does not see.

        Args:
            xyxy (torch.Tensor): (N, 4) boxes.
            params (dict): The crop: top, left, height and width.

        Returns:
            torch.Tensor: (N, ) bool.
        """
        top, left = params['top'], params['left']
        cx = 0.5 * (xyxy[:, 0] + xyxy[:, 2])
        cy = 0.5 * (xyxy[:, 1] + xyxy[:, 3])
        return ((left < cx) & (cx < left + params['width']) & (top < cy) &
                (cy < top + params['height']))

    @staticmethod
    def _record_homography_matrix(results: dict, left: int,
                                  top: int) -> None:
        """Compose the crop's translation into ``homography_matrix``.

        As mmdet's ``RandomCrop`` does, so that predictions can be mapped
        back to the original image.

        Args:
            results (dict): mmdet's results dict.
            left (int): x of the crop's top-left corner.
            top (int): y of the crop's top-left corner.
        """
        matrix = np.array([[1, 0, -left], [0, 1, -top], [0, 0, 1]],
                          dtype=np.float32)
        if results.get('homography_matrix') is None:
            results['homography_matrix'] = matrix
        else:
            results['homography_matrix'] = (
                matrix @ results['homography_matrix'])

    def __repr__(self) -> str:
        crop = self.crop
        return (f'{type(self).__name__}(prob={self.prob}, '
                f'min_scale={crop.min_scale}, max_scale={crop.max_scale}, '
                f'min_aspect_ratio={crop.min_aspect_ratio}, '
                f'max_aspect_ratio={crop.max_aspect_ratio}, '
                f'sampler_options={crop.options}, trials={crop.trials}, '
                f'min_size={self.sanitize.min_size}, '
                f'min_area={self.sanitize.min_area})')
