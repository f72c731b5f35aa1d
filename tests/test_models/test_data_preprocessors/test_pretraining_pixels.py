# Copyright (c) OpenMMLab. All rights reserved.
"""Each backbone sees the pixels its pretraining saw."""
from pathlib import Path

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.registry import MODELS, DefaultScope

from mmriformer.models import RIFormer
from mmriformer.testing import assert_float64_close, randomize_

ROOT = Path(__file__).parents[3]


def bgr_image(height=64, width=96, seed=0):
    """An image as ``LoadImageFromFile`` gives it: BGR uint8, (H, W, 3)."""
    return np.random.default_rng(seed).integers(
        0, 256, (height, width, 3), dtype=np.uint8)


def as_input(image):
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


@pytest.mark.parametrize('arch', ['s12', 's24', 's36', 'm36', 'm48'])
def test_riformer_detector_sees_mmpretrain_pixels(arch):
    """The detector's data preprocessor gives the backbone the features
    that mmpretrain's own preprocessing of the same image (from its config
    of the ImageNet model) gives."""
    import mmpretrain.models  # noqa: F401  (registers ClsDataPreprocessor)
    detector_cfg = Config.fromfile(ROOT / f'configs/rtdetr_riformer_{arch}.py')
    size = '8xb64' if arch == 'm48' else '8xb128'
    pretrain_cfg = get_config(
        f'mmpretrain::riformer/riformer-{arch}_{size}_in1k.py')
    ours = MODELS.build(detector_cfg.model.data_preprocessor)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        theirs = MODELS.build(
            dict(pretrain_cfg.data_preprocessor, type='ClsDataPreprocessor'))
    image = bgr_image()
    sample = DetDataSample(metainfo=dict(img_shape=image.shape[:2]))
    det_pixels = ours(dict(inputs=[as_input(image)], data_samples=[sample]),
                      False)['inputs']
    cls_pixels = theirs(dict(inputs=[as_input(image)]), False)['inputs']
    assert det_pixels.shape == cls_pixels.shape  # 64 x 96: no padding
    # |pixels| < 2.7 after two float32 roundings: within 2 ulp of 2.7.
    torch.testing.assert_close(det_pixels, cls_pixels, rtol=0, atol=2**-21)
    backbone = randomize_(RIFormer(arch='s12', out_indices=(2, 4, 6)))
    backbone.double().eval()
    with torch.no_grad():
        assert_float64_close(backbone(cls_pixels.double()),
                             backbone(det_pixels.double()))


@pytest.mark.parametrize('config', ['rtdetr_r18vd.py', 'rtdetr_r50vd.py',
                                    'rtdetr_r101vd.py', 'rtdetrv2_r34vd.py',
                                    'demo/rtdetr_riformer_s12_shapes.py'])
def test_official_and_demo_configs_keep_unit_pixels(config):
    """RGB in [0, 1]: what the official ResNet-vd weights were fine-tuned
    with, and what the from-scratch demo was recorded with."""
    cfg = Config.fromfile(ROOT / 'configs' / config)
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    image = bgr_image()
    sample = DetDataSample(metainfo=dict(img_shape=image.shape[:2]))
    pixels = preprocessor(dict(inputs=[as_input(image)],
                               data_samples=[sample]), False)['inputs']
    expected = torch.from_numpy(
        np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1))).float()
    # One float32 rounding of a value in [0, 1]: at most 2**-24.
    torch.testing.assert_close(pixels, expected[None] / 255, rtol=0,
                               atol=2**-24)
