# Copyright (c) OpenMMLab. All rights reserved.
"""DEIM's batch mixup: blend, merged instances, epoch window."""
import random

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData

from mmriformer.models import DEIMBatchMixUp

# Integer xyxy boxes of three 40 x 48 images; image k is 0 but for its
# boxes, which are 1 (labels 10k, 10k+1, ...).
BOXES = [
    [[2, 3, 20, 18], [25, 20, 45, 38]],
    [[10, 10, 30, 35]],
    [[0, 0, 12, 12], [30, 5, 47, 15], [5, 25, 20, 39]],
]
IGNORED = [[[40, 30, 44, 36]], [], [[1, 30, 4, 33]]]


@pytest.fixture
def epoch():
    """Set the epoch in the message hub; restore it afterwards."""
    hub = MessageHub.get_current_instance()
    missing = object()
    before = hub.runtime_info.get('epoch', missing)
    yield lambda value: hub.update_info('epoch', value)
    if before is missing:
        hub.pop_info('epoch')
    else:
        hub.update_info('epoch', before)


def instances(boxes, first_label):
    data = InstanceData()
    data.bboxes = HorizontalBoxes(
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    data.labels = torch.arange(first_label, first_label + len(boxes))
    return data


def batch():
    """Three painted images and their samples."""
    inputs = torch.zeros(3, 3, 40, 48)
    samples = []
    for k, boxes in enumerate(BOXES):
        for x1, y1, x2, y2 in boxes:
            inputs[k, :, y1:y2, x1:x2] = 1
        sample = DetDataSample(metainfo=dict(img_shape=(40 - k, 48),
                                             pad_shape=(40, 48)))
        sample.gt_instances = instances(boxes, 10 * k)
        sample.ignored_instances = instances(IGNORED[k], 10 * k + 5)
        samples.append(sample)
    return inputs, samples


def drawn_weight(seed):
    """The weight DEIM draws after the probability's draw."""
    random.seed(seed)
    random.random()
    return round(random.uniform(0.45, 0.55), 6)


@pytest.mark.parametrize('seed', range(5))
def test_mixes_each_image_with_its_predecessor(seed, epoch):
    epoch(4)
    weight = drawn_weight(seed)
    assert 0.45 <= weight <= 0.55
    inputs, samples = batch()
    random.seed(seed)
    out, mixed = DEIMBatchMixUp(prob=1.0)(inputs.clone(), samples)
    previous = [2, 0, 1]
    torch.testing.assert_close(
        out, weight * inputs + (1 - weight) * inputs[previous])
    for k, sample in enumerate(mixed):
        j = previous[k]
        for field, boxes, offset in (('gt_instances', BOXES, 0),
                                     ('ignored_instances', IGNORED, 5)):
            got = sample.get(field)
            torch.testing.assert_close(
                got.bboxes.tensor,
                torch.tensor(boxes[k] + boxes[j],
                             dtype=torch.float32).reshape(-1, 4))
            assert got.labels.tolist() == [
                10 * k + offset + i for i in range(len(boxes[k]))
            ] + [10 * j + offset + i for i in range(len(boxes[j]))]
        assert sample.img_shape == (40 - min(k, j), 48)
        assert sample.pad_shape == (40, 48)
        # Boxes on their content: every merged box is painted, by at least
        # the smaller weight; nothing outside them is.
        painted = torch.zeros(40, 48, dtype=torch.bool)
        for x1, y1, x2, y2 in sample.gt_instances.bboxes.tensor.int():
            assert (out[k, :, y1:y2, x1:x2] >= 0.45 - 1e-6).all()
            painted[y1:y2, x1:x2] = True
        assert not out[k][:, ~painted].any()
    # The input samples are left as they were.
    assert len(samples[0].gt_instances) == 2


def test_window_boundaries(epoch):
    mixup = DEIMBatchMixUp(prob=1.0, epochs=(2, 5))
    for value, mixes in ((0, False), (1, False), (2, True), (4, True),
                         (5, False), (9, False)):
        epoch(value)
        inputs, samples = batch()
        out, out_samples = mixup(inputs, samples)
        assert (out is not inputs) == mixes
        assert (out_samples is not samples) == mixes


def test_without_an_epoch_counts_as_epoch_zero(epoch):
    hub = MessageHub.get_current_instance()
    epoch(0)
    hub.pop_info('epoch')
    inputs, samples = batch()
    assert DEIMBatchMixUp(prob=1.0, epochs=(0, 1))(inputs, samples)[0] \
        is not inputs


def test_prob_zero_is_identity_and_draws_once(epoch):
    epoch(4)
    inputs, samples = batch()
    random.seed(0)
    out, out_samples = DEIMBatchMixUp(prob=0.0)(inputs, samples)
    assert out is inputs and out_samples is samples
    after = random.random()
    random.seed(0)
    random.random()
    assert random.random() == after


@pytest.mark.parametrize('seed', range(20))
def test_prob_draws_as_deim(seed, epoch):
    epoch(4)
    random.seed(seed)
    mixes = random.random() < 0.5
    random.seed(seed)
    inputs, samples = batch()
    assert (DEIMBatchMixUp(prob=0.5)(inputs, samples)[0]
            is not inputs) == mixes


def test_in_det_data_preprocessor(epoch):
    """Before the batch resize, in training only."""
    preprocessor = MODELS.build(
        dict(type='DetDataPreprocessor', mean=[0, 0, 0], std=[1, 1, 1],
             batch_augments=[
                 dict(type='DEIMBatchMixUp', prob=1.0, epochs=(0, 1)),
                 dict(type='BatchRandomChoiceResize', scales=[80])
             ]))
    inputs, samples = batch()
    data = dict(inputs=list((inputs * 255).to(torch.uint8)),
                data_samples=samples)
    epoch(0)
    out = preprocessor(data, training=True)
    assert out['inputs'].shape == (3, 3, 80, 80)
    assert [len(s.gt_instances) for s in out['data_samples']] == [5, 3, 4]
    # Boxes scaled with the images, 40 x 48 to 80 x 80.
    boxes = out['data_samples'][1].gt_instances.bboxes
    torch.testing.assert_close(
        getattr(boxes, 'tensor', boxes)[0],
        torch.tensor([10, 10, 30, 35]) * torch.tensor([80 / 48, 2] * 2))
    inputs, samples = batch()
    data = dict(inputs=list((inputs * 255).to(torch.uint8)),
                data_samples=samples)
    out = preprocessor(data, training=False)
    assert [len(s.gt_instances) for s in out['data_samples']] == [2, 1, 3]


@pytest.mark.parametrize('kwargs, match', [
    (dict(prob=1.5), 'prob'),
    (dict(epochs=(5, 2)), 'epochs'),
    (dict(epochs=(1, )), 'epochs'),
    (dict(epochs=(-1, 3)), 'epochs'),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DEIMBatchMixUp(**kwargs)
