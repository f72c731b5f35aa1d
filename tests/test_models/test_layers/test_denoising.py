# Copyright (c) OpenMMLab. All rights reserved.
import math

import torch
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy

from mmriformer.models.layers import RTDETRCdnQueryGenerator
from mmriformer.testing import make_det_samples

# RT-DETR's inverse_sigmoid of 0: log(eps / 1) with eps 1e-5.
EMPTY_LOGIT = math.log(1e-5)


def generator(**kwargs):
    return RTDETRCdnQueryGenerator(
        num_classes=3, embed_dims=8, num_matching_queries=10,
        label_noise_scale=0.5, box_noise_scale=1.0,
        group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=12),
        **kwargs)


def test_padded_slots_start_as_the_empty_box():
    """Image 0 has 1 box, image 1 has 3: 4 groups of 3 positive and 3
    negative slots each; image 0 fills 1 of every 3."""
    torch.manual_seed(0)
    samples = make_det_samples(
        [(100, 100)] * 2,
        [[[10, 10, 50, 60]], [[5, 5, 30, 30], [40, 40, 90, 80],
                              [20, 50, 60, 95]]])
    _, boxes, _, meta = generator()(samples)
    assert meta['num_denoising_queries'] == 24
    filled = torch.zeros(2, 24, dtype=torch.bool)
    filled[0, ::3] = True
    filled[1] = True
    assert (boxes[~filled] == EMPTY_LOGIT).all()
    assert (boxes[filled] > EMPTY_LOGIT).any(-1).all()


def test_box_noise_bounds_and_clipped_boxes():
    """Positives move each corner by less than half the box side, negatives
    by one to two times that; clipped or crossed boxes reach RT-DETR's
    logit floor (mmdet's eps 1e-3 would stop at log(1e-3) = -6.9)."""
    torch.manual_seed(0)
    gt = [[40., 45., 60., 55.]]  # half sides: 10 and 5 px
    samples = make_det_samples([(100, 100)], [gt])
    _, boxes, _, meta = generator()(samples)
    num_groups = meta['num_denoising_groups']
    assert num_groups == 12
    xyxy = bbox_cxcywh_to_xyxy(boxes[0].sigmoid()) * 100
    moved = (xyxy - torch.tensor(gt)).abs() / torch.tensor(
        [10., 5., 10., 5.])
    positive = moved[0::2]
    negative = moved[1::2]
    # crossed corners give a side <= 0, which starts at the logit floor
    unclipped = (xyxy[1::2] > 0.01).all(-1) & (xyxy[1::2] < 99.99).all(-1) \
        & (xyxy[1::2, 2:] - xyxy[1::2, :2] > 0.01).all(-1)
    assert unclipped.sum() >= 3
    assert (positive < 1 + 1e-4).all()
    assert ((negative[unclipped] > 1 - 1e-4)
            & (negative[unclipped] < 2 + 1e-4)).all()
    torch.manual_seed(1)
    many = generator()(make_det_samples([(100, 100)],
                                        [[[0., 0., 10., 10.]]]))[1]
    assert many.min() < math.log(1e-3) - 1
