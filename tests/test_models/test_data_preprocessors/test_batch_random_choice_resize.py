# Copyright (c) OpenMMLab. All rights reserved.
"""BatchRandomChoiceResize: RT-DETR's multi-scale training."""
import math
import random
from collections import Counter

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.logging import MessageHub

from mmriformer.models import BatchRandomChoiceResize
from mmriformer.models.data_preprocessors import RTDETR_SCALES
from mmriformer.testing import make_det_samples


def samples_with_boxes(size=640):
    """Two images of size x size, with 2 and 1 boxes (HorizontalBoxes, as
    PackDetInputs gives them)."""
    boxes = [[[10, 20, 300, 400], [0, 0, size, size]], [[5, 600, 50, 639]]]
    samples = make_det_samples([(size, size)] * 2, boxes)
    for sample in samples:
        sample.gt_instances.bboxes = HorizontalBoxes(
            sample.gt_instances.bboxes)
    return samples


def test_sizes_follow_the_official_list():
    """Every size is from the list, each is drawn, and 640 (listed three
    times) about three times as often as another."""
    resize = BatchRandomChoiceResize()
    assert resize.scales == RTDETR_SCALES and len(RTDETR_SCALES) == 13
    random.seed(0)
    draws = 1300
    counts = Counter(
        resize(torch.zeros(1, 1, 8, 8), [])[0].shape[-1]
        for _ in range(draws))
    assert set(counts) == set(RTDETR_SCALES)
    # Binomial counts: within 5 standard deviations of the mean.
    for size, times in ((640, 3), (480, 1), (800, 1)):
        p = times / 13
        mean, std = draws * p, math.sqrt(draws * p * (1 - p))
        assert abs(counts[size] - mean) < 5 * std, (size, counts[size])


def test_nearest_resize_and_boxes():
    random.seed(1)
    resize = BatchRandomChoiceResize(scales=[800])
    inputs = torch.rand(2, 3, 640, 640)
    samples = samples_with_boxes()
    normalised = [s.gt_instances.bboxes.tensor / 640 for s in samples]
    out, samples = resize(inputs, samples)
    assert out.shape == (2, 3, 800, 800)
    # Nearest: output pixel i reads input pixel floor(i * 640 / 800).
    index = (torch.arange(800) * 640 // 800)
    assert torch.equal(out, inputs[:, :, index][:, :, :, index])
    for sample, before in zip(samples, normalised):
        assert sample.img_shape == sample.pad_shape == (800, 800)
        assert sample.batch_input_shape == (800, 800)
        # Boxes keep their place relative to the image, as the official
        # normalised targets do.
        torch.testing.assert_close(sample.gt_instances.bboxes.tensor / 800,
                                   before)


def test_stop_epoch():
    resize = BatchRandomChoiceResize(scales=[480], stop_epoch=3)
    hub = MessageHub.get_current_instance()
    inputs = torch.rand(1, 3, 640, 640)
    try:
        hub.update_info('epoch', 2)
        assert resize(inputs, samples_with_boxes()[:1])[0].shape[-1] == 480
        hub.update_info('epoch', 3)
        out, samples = resize(inputs, samples_with_boxes()[:1])
        assert out is inputs and samples[0].img_shape == (640, 640)
    finally:
        hub.update_info('epoch', 0)


def test_bad_scales():
    with pytest.raises(ValueError, match='positive integer sizes'):
        BatchRandomChoiceResize(scales=[640, 0])
    with pytest.raises(ValueError, match='positive integer sizes'):
        BatchRandomChoiceResize(scales=[])


def test_in_the_data_preprocessor():
    """As configured: only training batches are resized."""
    preprocessor = MODELS.build(
        dict(type='DetDataPreprocessor', mean=[0, 0, 0], std=[255] * 3,
             bgr_to_rgb=True, pad_size_divisor=32,
             batch_augments=[dict(type='BatchRandomChoiceResize',
                                  scales=[512])]))
    data = dict(inputs=[torch.randint(0, 256, (3, 640, 640),
                                      dtype=torch.uint8)],
                data_samples=samples_with_boxes()[:1])
    assert preprocessor(data, training=True)['inputs'].shape[-1] == 512
    data['data_samples'] = samples_with_boxes()[:1]
    assert preprocessor(data, training=False)['inputs'].shape[-1] == 640
