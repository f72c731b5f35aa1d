# Copyright (c) OpenMMLab. All rights reserved.
from typing import Sequence, Tuple

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from torchvision import tv_tensors
from torchvision.transforms import v2


def _check_range(name: str, value: Sequence[float], low: float,
                 high: float) -> Tuple[float, float]:
    """A (min, max) factor range, checked to lie within [low, high].

    Args:
        name (str): The argument's name, for the error message.
        value (Sequence[float]): The (min, max) range given.
        low (float): Smallest allowed min.
        high (float): Largest allowed max.

    Returns:
        tuple[float, float]: The range.
    """
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(f'{name} must be (min, max) with {low} <= min <= '
                         f'max <= {high}, got {value}')
    return float(value[0]), float(value[1])


@TRANSFORMS.register_module()
class RandomPhotometricDistort(BaseTransform):
    """RT-DETR's photometric distortion: torchvision's, on mmdet's images.

    Calls ``torchvision.transforms.v2.RandomPhotometricDistort``, so with
    the same torch seed it gives the official pipeline's pixels: each of
    brightness, contrast, saturation and hue is changed with probability
    ``p`` (contrast before or after saturation and hue, at random), then the
    channels are permuted with probability ``p``. Brightness multiplies and
    every step clamps to [0, 255], unlike mmdet's ``PhotoMetricDistortion``,
    which adds brightness in float without clamping.

    torchvision takes RGB, and saturation and hue depend on the channel
    order, so mmdet's BGR image is turned to RGB, distorted and turned back.

    Required Keys:

    - img (np.ndarray): (H, W, 3) uint8, BGR.

    Modified Keys:

    - img (still (H, W, 3) uint8 BGR)

    Args:
        brightness (Sequence[float]): (min, max) of the brightness factor.
            Defaults to (0.875, 1.125).
        contrast (Sequence[float]): (min, max) of the contrast factor.
            Defaults to (0.5, 1.5).
        saturation (Sequence[float]): (min, max) of the saturation factor.
            Defaults to (0.5, 1.5).
        hue (Sequence[float]): (min, max) of the hue shift, within
            [-0.5, 0.5]. Defaults to (-0.05, 0.05).
        p (float): Probability of each of the five steps, as torchvision's
            ``p`` (not of the whole transform). Defaults to 0.5.
    """

    def __init__(self,
                 brightness: Sequence[float] = (0.875, 1.125),
                 contrast: Sequence[float] = (0.5, 1.5),
                 saturation: Sequence[float] = (0.5, 1.5),
                 hue: Sequence[float] = (-0.05, 0.05),
                 p: float = 0.5) -> None:
        # torchvision's RandomPhotometricDistort checks none of these.
        if not 0 <= p <= 1:
            raise ValueError(f'p must be in [0, 1], got {p}')
        self.distort = v2.RandomPhotometricDistort(
            brightness=_check_range('brightness', brightness, 0, np.inf),
            contrast=_check_range('contrast', contrast, 0, np.inf),
            saturation=_check_range('saturation', saturation, 0, np.inf),
            hue=_check_range('hue', hue, -0.5, 0.5),
            p=p)

    def transform(self, results: dict) -> dict:
        """Distort the image's colours, maybe.

        Args:
            results (dict): mmdet's results dict with ``img``.

        Returns:
            dict: The same dict with the new ``img``.
        """
        img = results['img']
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise TypeError(
                'RandomPhotometricDistort needs an (H, W, 3) uint8 BGR '
                f'image, got {img.dtype} {img.shape}; load it without '
                'to_float32')
        rgb = torch.from_numpy(np.ascontiguousarray(img[..., ::-1]))
        out = self.distort(tv_tensors.Image(rgb.permute(2, 0, 1)))
        results['img'] = np.ascontiguousarray(
            out.permute(1, 2, 0).numpy()[..., ::-1])
        return results

    def __repr__(self) -> str:
        distort = self.distort
        return (f'{type(self).__name__}(brightness={distort.brightness}, '
                f'contrast={distort.contrast}, '
                f'saturation={distort.saturation}, hue={distort.hue}, '
                f'p={distort.p})')
