# Copyright (c) OpenMMLab. All rights reserved.
"""DEIM's Matchability-Aware Loss (MAL): against the paper's formula in
float64, on hand-made cases, against values of the official code, and in
RTDETRHead."""
import math
from pathlib import Path

import pytest
import torch
from helpers import build
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmriformer.models.losses import (MatchabilityAwareLoss,
                                      matchability_aware_loss, varifocal_loss)
from mmriformer.testing import EPS32, assert_float64_close, make_det_samples

ROOT = Path(__file__).parents[3]
BASE_MODEL = ROOT / 'configs/_base_/models/rtdetr_riformer.py'

# Everything runs in float64 against float64 Python-float references; BCE-
# with-logits and log-of-sigmoid round differently by ~1e-15 of the loss
# scale, far inside assert_float64_close's 1e-10, while a wrong weight, power
# or mask is off by >= 1e-2.


def paper_mal(x, iou, matched, alpha=1.0, gamma=1.5):
    """MAL of one (query, class) slot as the DEIM paper writes it, with
    DEIM's optional ``mal_alpha`` on the negatives, in Python floats::

        matched:   -(q ** gamma * log p + (1 - q ** gamma) * log(1 - p))
        unmatched: -alpha * p ** gamma * log(1 - p)
    """
    p = 1 / (1 + math.exp(-x))
    if matched:
        q = iou**gamma
        return -(q * math.log(p) + (1 - q) * math.log(1 - p))
    return -alpha * p**gamma * math.log(1 - p)


def reference(pred, target, positive, alpha=1.0, gamma=1.5):
    out = torch.zeros(pred.shape, dtype=torch.float64)
    for i in range(pred.shape[0]):
        for j in range(pred.shape[1]):
            out[i, j] = paper_mal(float(pred[i, j]), float(target[i, j]),
                                  bool(positive[i, j]), alpha, gamma)
    return out


def make_inputs(num=7, num_classes=4, seed=0):
    """Logits, IoU-valued soft one-hot and matched mask: five matched rows
    (one with IoU 0, one with IoU 1) and two background rows."""
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(num, num_classes, generator=gen, dtype=torch.float64)
    labels = torch.randint(num_classes, (num, ), generator=gen)
    ious = torch.rand(num, generator=gen, dtype=torch.float64) * 0.8 + 0.1
    ious[0], ious[1] = 0.0, 1.0
    positive = torch.zeros(num, num_classes, dtype=torch.bool)
    positive[torch.arange(num - 2), labels[:-2]] = True
    return pred * 2, positive * ious[:, None], positive


@pytest.mark.parametrize('alpha, gamma', [(1.0, 1.5), (0.75, 2.0),
                                          (1.0, 1.0), (0.5, 0.5)])
def test_elementwise_matches_paper_formula(alpha, gamma):
    pred, target, positive = make_inputs()
    loss = matchability_aware_loss(pred, target, positive, alpha, gamma)
    assert loss.shape == pred.shape and loss.dtype == torch.float64
    assert_float64_close(reference(pred, target, positive, alpha, gamma),
                         loss)


def test_matched_and_unmatched_slots():
    x = torch.tensor([[0.7, -1.2, 2.5]], dtype=torch.float64)
    p = x.sigmoid()
    unmatched = torch.zeros(1, 3, dtype=torch.bool)
    matched = torch.ones(1, 3, dtype=torch.bool)
    for gamma in (0.5, 1.5, 3.0):
        # IoU 1: target 1 whatever gamma, weight 1.
        loss = matchability_aware_loss(x, torch.ones_like(x), matched,
                                       gamma=gamma)
        assert_float64_close(-p.log(), loss)
        # Matched but IoU 0: pushed to score 0 with weight 1, where VFL's
        # weight (the IoU) drops the slot.
        zero = torch.zeros_like(x)
        loss = matchability_aware_loss(x, zero, matched, gamma=gamma)
        assert_float64_close(-(1 - p).log(), loss)
        assert (varifocal_loss(x, zero, positive=matched) == 0).all()
        # Unmatched: focal weight alpha * p ** gamma on -log(1 - p).
        loss = matchability_aware_loss(x, zero, unmatched, 0.6, gamma)
        assert_float64_close(-0.6 * p**gamma * (1 - p).log(), loss)


def test_gamma_sets_the_target_and_the_negative_weight():
    iou = torch.full((1, 1), 0.6, dtype=torch.float64)
    matched = torch.ones(1, 1, dtype=torch.bool)
    for gamma in (0.5, 1.5, 2.0):
        # The matched loss is least (zero gradient) where p = IoU ** gamma.
        q = 0.6**gamma
        x = torch.tensor([[math.log(q / (1 - q))]], dtype=torch.float64,
                         requires_grad=True)
        matchability_aware_loss(x, iou, matched, gamma=gamma).backward()
        assert abs(x.grad.item()) < 1e-12
        # Its gradient is p - q: a higher score is pushed down.
        x = torch.full((1, 1), 2.0, dtype=torch.float64, requires_grad=True)
        matchability_aware_loss(x, iou, matched, gamma=gamma).backward()
        assert_float64_close(torch.sigmoid(x.detach()) - q, x.grad)
    # A larger gamma lowers the target of a partial match and weighs easy
    # negatives (p < 1) down more.
    x = torch.full((1, 1), -1.0, dtype=torch.float64)
    unmatched = ~matched
    low, high = (matchability_aware_loss(x, iou, unmatched, gamma=g)
                 for g in (1.0, 2.0))
    assert_float64_close(low * torch.sigmoid(x), high)


# Values of DEIM's official loss_labels_mal, EXECUTED once on the inputs
# below (Intellindust-AI-Lab/DEIM, commit
# 09d35d53d39ee3145a1e61e3a989b28b9468d1dd, engine/deim/deim_criterion.py).
# Produced by a scratch script (not kept in this repository) that loads that
# file with this venv's torch 2.14.1 (only its imports of engine.core's
# registry and engine.misc.dist_utils stubbed: register as identity, world
# size 1), builds DEIMCriterion(None, {}, ['mal'], gamma=gamma,
# num_classes=3, mal_alpha=mal_alpha) and prints, in float64,
# loss_labels_mal(dict(pred_logits=LOGITS, pred_boxes=BOXES), targets,
# MATCHES, num_boxes=3.0)['loss_mal'], targets holding GT_LABELS and
# GT_BOXES:
#   python run_official_mal.py /path/to/DEIM  (git archive of engine/)
# Image 0: query 0 sits exactly on gt 0 (IoU 1), query 1 overlaps gt 1 with
# IoU 7/9; image 1: query 0 is matched to gt 0 but beside it (IoU 0); the
# other five queries are unmatched.
LOGITS = [[[-1.0, 2.0, -3.0], [0.5, -0.5, 1.5], [-2.0, 0.0, 1.0],
           [3.0, -4.0, -0.25]],
          [[1.0, -2.0, 0.5], [-1.5, 2.5, -0.5], [0.0, -1.0, -3.5],
           [2.0, 1.0, -2.0]]]
# Normalised (cx, cy, w, h).
BOXES = [[[0.3, 0.3, 0.2, 0.2], [0.7, 0.65, 0.2, 0.4], [0.5, 0.9, 0.1, 0.1],
          [0.1, 0.8, 0.1, 0.1]],
         [[0.32, 0.2, 0.1, 0.1], [0.8, 0.8, 0.1, 0.1], [0.6, 0.3, 0.2, 0.1],
          [0.4, 0.7, 0.1, 0.2]]]
GT_LABELS = [[1, 2], [0]]
GT_BOXES = [[[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.2, 0.4]],
            [[0.2, 0.2, 0.1, 0.1]]]
MATCHES = [([0, 1], [0, 1]), ([0], [0])]
MATCHED_IOUS = [[1.0, 7 / 9], [0.0]]
# (gamma, mal_alpha or None, official loss_mal)
OFFICIAL = [(1.5, None, 4.1970477264885675),
            (2.0, 0.75, 3.1015020954576156),
            (1.0, None, 4.608596895960378)]


def official_case_targets():
    """IoU-valued soft one-hot and matched mask of the official case,
    flattened to (2 * 4, 3) like the head flattens images."""
    target = torch.zeros(2, 4, 3, dtype=torch.float64)
    positive = torch.zeros(2, 4, 3, dtype=torch.bool)
    for image, (queries, gts) in enumerate(MATCHES):
        for query, gt, iou in zip(queries, gts, MATCHED_IOUS[image]):
            label = GT_LABELS[image][gt]
            target[image, query, label] = iou
            positive[image, query, label] = True
    return target.view(8, 3), positive.view(8, 3)


@pytest.mark.parametrize('gamma, mal_alpha, expected', OFFICIAL)
def test_module_equals_official_values(gamma, mal_alpha, expected):
    pred = torch.tensor(LOGITS, dtype=torch.float64).view(8, 3)
    target, positive = official_case_targets()
    criterion = MatchabilityAwareLoss(
        gamma=gamma, alpha=1.0 if mal_alpha is None else mal_alpha)
    # DEIM divides the sum by num_boxes = 3.
    loss = criterion(pred, target, positive=positive,
                     reduction_override='sum') / 3
    assert_float64_close(torch.tensor(expected, dtype=torch.float64), loss)
    # And the paper's formula gives the same.
    assert_float64_close(
        reference(pred, target, positive, criterion.alpha, gamma).sum() / 3,
        loss)


def build_head(**loss_cls):
    """The base config's head with 3 classes and MAL as its class loss."""
    model = Config.fromfile(BASE_MODEL).model
    head = model.bbox_head
    head.update(num_classes=3, num_pred_layer=model.decoder.num_layers + 1,
                train_cfg=model.train_cfg, test_cfg=model.test_cfg,
                loss_cls=dict(type='MatchabilityAwareLoss', **loss_cls))
    return MODELS.build(head)


@pytest.mark.parametrize('gamma, mal_alpha, expected', OFFICIAL)
def test_head_equals_official_values(gamma, mal_alpha, expected):
    """The head matches the official case as given and builds the IoU
    target itself from the boxes, in pixels of non-square images."""
    alpha = 1.0 if mal_alpha is None else mal_alpha
    head = build_head(gamma=gamma, alpha=alpha)
    metas = [dict(img_shape=(480, 640)), dict(img_shape=(600, 400))]
    gts = []
    for (h, w), labels, boxes in zip(((480, 640), (600, 400)), GT_LABELS,
                                     GT_BOXES):
        boxes = torch.tensor(boxes, dtype=torch.float64)
        xyxy = torch.cat([boxes[:, :2] - boxes[:, 2:] / 2,
                          boxes[:, :2] + boxes[:, 2:] / 2], -1)
        gts.append(InstanceData(labels=torch.tensor(labels),
                                bboxes=xyxy * xyxy.new_tensor([w, h, w, h])))
    logits = torch.tensor(LOGITS, dtype=torch.float64)
    boxes = torch.tensor(BOXES, dtype=torch.float64)

    labels = head.get_targets(list(logits), list(boxes), gts, metas)[0]
    assert [label.tolist() for label in labels] == [[1, 2, 3, 3],
                                                    [0, 3, 3, 3]]
    loss_cls = head.loss_by_feat_single(logits, boxes, gts, metas)[0]
    # mmdet's weight_reduce_loss adds float32's eps to the divisor.
    assert_float64_close(
        torch.tensor([expected * 3 / (3 + EPS32)], dtype=torch.float64),
        loss_cls)


def test_module_reductions_and_weight():
    pred, target, positive = make_inputs()
    elementwise = reference(pred, target, positive)
    criterion = MODELS.build(
        dict(type='MatchabilityAwareLoss', loss_weight=3.0))
    assert isinstance(criterion, MatchabilityAwareLoss)
    assert criterion.use_sigmoid
    assert (criterion.alpha, criterion.gamma) == (1.0, 1.5)

    assert_float64_close(3 * elementwise.mean(),
                         criterion(pred, target, positive=positive))
    assert_float64_close(
        3 * elementwise,
        criterion(pred, target, reduction_override='none',
                  positive=positive))
    row_weight = torch.tensor([1., 0., 2., 1., 0., 1., 1.],
                              dtype=torch.float64)
    assert_float64_close(
        3 * (elementwise * row_weight[:, None]).sum() / (4.0 + EPS32),
        criterion(pred, target, row_weight, avg_factor=4.0,
                  positive=positive))


def test_gradient_through_neither_weight_nor_target():
    pred, target, positive = make_inputs()
    x = pred.clone().requires_grad_(True)
    iou = target.clone().requires_grad_(True)
    matchability_aware_loss(x, iou, positive).sum().backward()
    assert iou.grad is None
    # With the weight and target constants, d loss / d x = w * (p - q).
    p, m = pred.sigmoid(), positive.double()
    w = p**1.5 * (1 - m) + m
    assert_float64_close(w * (p - target**1.5 * m), x.grad)


def test_bad_input():
    pred, target, positive = make_inputs()
    # Called as mmdet's DETR heads call their class loss: labels, no mask.
    labels, label_weights = torch.tensor([0, 1, 2, 3, 0, 4, 4]), torch.ones(7)
    with pytest.raises(ValueError, match='positive.*RTDETRHead'):
        MatchabilityAwareLoss()(pred, labels, label_weights, avg_factor=5.)
    with pytest.raises(ValueError, match=r'\(7, 4\).*\(7, 3\)'):
        MatchabilityAwareLoss()(pred, target[:, :3], positive=positive)
    with pytest.raises(ValueError, match=r'positive \(7, 3\)'):
        MatchabilityAwareLoss()(pred, target, positive=positive[:, :3])
    with pytest.raises(ValueError, match='use_sigmoid'):
        MatchabilityAwareLoss(use_sigmoid=False)
    with pytest.raises(ValueError, match='gamma > 0'):
        MatchabilityAwareLoss(gamma=0)
    with pytest.raises(ValueError, match='gamma must be positive'):
        matchability_aware_loss(pred, target, positive, gamma=-1.0)
    with pytest.raises(ValueError, match='reduction'):
        MatchabilityAwareLoss(reduction='max')
    with pytest.raises(ValueError, match='reduction'):
        MatchabilityAwareLoss()(pred, target, reduction_override='max',
                                positive=positive)


def test_tiny_detector_trains_with_mal(tiny):
    """Finite losses, gradients into the class branches and the backbone,
    and a falling loss over a few steps on one fixed batch."""
    torch.manual_seed(0)
    model = build(tiny['cfg'], **{
        'bbox_head.loss_cls': dict(type='MatchabilityAwareLoss', gamma=1.5)
    }).train()
    assert isinstance(model.bbox_head.loss_cls, MatchabilityAwareLoss)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 64, 64, generator=gen)
    samples = make_det_samples([(64, 64)] * 2,
                               [[[4, 6, 30, 40], [34, 20, 60, 58]],
                                [[10, 10, 50, 44]]])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    totals = []
    for step in range(6):
        losses = model.loss(images, samples)
        assert all(torch.isfinite(v) for v in losses.values())
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        if step == 0:
            assert losses['loss_cls'] > 0
            for param in (model.bbox_head.cls_branches[0].weight,
                          model.backbone.patch_embed.proj.weight):
                assert param.grad is not None and param.grad.abs().sum() > 0
        optimizer.step()
        totals.append(total.item())
    assert totals[-1] < 0.85 * totals[0], totals
