# Copyright (c) OpenMMLab. All rights reserved.
import math

import pytest
import torch
from mmdet.registry import MODELS

from mmriformer.models.losses import RTDETRVarifocalLoss, varifocal_loss


def reference_elementwise(pred, target, positive, alpha=0.75, gamma=2.0):
    """RT-DETR's VFL written out one element at a time.

    Python floats are float64; the result is cast to float32 so that
    comparisons use float32 tolerances.
    """
    out = torch.zeros(pred.shape, dtype=torch.float64)
    for i in range(pred.shape[0]):
        for j in range(pred.shape[1]):
            x, t = float(pred[i, j]), float(target[i, j])
            p = 1 / (1 + math.exp(-x))
            onehot = 1.0 if positive[i, j] else 0.0
            w = alpha * p**gamma * (1 - onehot) + t
            bce = -(t * math.log(p) + (1 - t) * math.log(1 - p))
            out[i, j] = w * bce
    return out.float()


def make_inputs(num=6, num_classes=4, seed=0):
    """Logits and an IoU-valued soft one-hot with two background rows."""
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(num, num_classes, generator=gen) * 2
    labels = torch.randint(num_classes, (num, ), generator=gen)
    ious = torch.rand(num, generator=gen) * 0.8 + 0.1
    target = torch.zeros(num, num_classes)
    target[torch.arange(num), labels] = ious
    target[-2:] = 0
    return pred, target


def test_elementwise_matches_reference():
    pred, target = make_inputs()
    loss = varifocal_loss(pred, target)
    expected = reference_elementwise(pred, target, target > 0)
    assert loss.shape == pred.shape
    torch.testing.assert_close(loss, expected)

    loss = varifocal_loss(pred, target, alpha=0.5, gamma=1.5)
    expected = reference_elementwise(pred, target, target > 0, 0.5, 1.5)
    torch.testing.assert_close(loss, expected)


def test_module_reductions_and_loss_weight():
    pred, target = make_inputs()
    elementwise = reference_elementwise(pred, target, target > 0)
    loss_cfg = dict(type='RTDETRVarifocalLoss', loss_weight=3.0)
    criterion = MODELS.build(loss_cfg)
    assert isinstance(criterion, RTDETRVarifocalLoss)
    assert criterion.use_sigmoid

    torch.testing.assert_close(criterion(pred, target), 3 * elementwise.mean())
    torch.testing.assert_close(
        criterion(pred, target, reduction_override='sum'),
        3 * elementwise.sum())
    torch.testing.assert_close(
        criterion(pred, target, reduction_override='none'), 3 * elementwise)
    # RT-DETR normalises by the number of gt boxes.
    torch.testing.assert_close(
        criterion(pred, target, avg_factor=4.0), 3 * elementwise.sum() / 4.0)


def test_weight():
    pred, target = make_inputs()
    elementwise = reference_elementwise(pred, target, target > 0)
    criterion = RTDETRVarifocalLoss()
    weight = torch.rand(pred.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        criterion(pred, target, weight, avg_factor=2.0),
        (elementwise * weight).sum() / 2.0)
    # A per-sample weight scales whole rows.
    row_weight = torch.tensor([1., 0., 2., 1., 0., 1.])
    torch.testing.assert_close(
        criterion(pred, target, row_weight, reduction_override='sum'),
        (elementwise * row_weight[:, None]).sum())


def test_matched_slot_with_zero_iou():
    pred, target = make_inputs()
    # Query 4 is matched to class 1 but its box does not overlap the gt.
    positive = target > 0
    positive[4, 1] = True
    criterion = RTDETRVarifocalLoss(reduction='none')

    loss = criterion(pred, target, positive=positive)
    expected = reference_elementwise(pred, target, positive)
    torch.testing.assert_close(loss, expected)
    # Weight = IoU = 0 for that slot, unlike the default negative treatment.
    assert loss[4, 1] == 0
    assert criterion(pred, target)[4, 1] > 0
    torch.testing.assert_close(loss[4, 2:], criterion(pred, target)[4, 2:])


def test_gradient_uses_detached_weight():
    pred, target = make_inputs()
    alpha, gamma = 0.75, 2.0
    onehot = (target > 0).float()

    def formula(detach):
        x = pred.clone().requires_grad_(True)
        p = x.sigmoid()
        if detach:
            p = p.detach()
        w = alpha * p**gamma * (1 - onehot) + target
        bce = -(
            target * torch.log(x.sigmoid()) +
            (1 - target) * torch.log(1 - x.sigmoid()))
        (w * bce).sum().backward()
        return x.grad

    x = pred.clone().requires_grad_(True)
    RTDETRVarifocalLoss(reduction='sum')(x, target).backward()
    torch.testing.assert_close(x.grad, formula(detach=True))
    # The weight of negative slots depends on p, so a live weight differs.
    assert not torch.allclose(x.grad, formula(detach=False), atol=1e-4)


def test_shape_and_config_errors():
    pred, target = make_inputs()
    with pytest.raises(ValueError, match=r'\(6, 4\).*\(6, 3\)'):
        RTDETRVarifocalLoss()(pred, target[:, :3])
    with pytest.raises(ValueError, match=r'\(6, 3\)'):
        RTDETRVarifocalLoss()(pred, target, positive=target[:, :3] > 0)
    with pytest.raises(ValueError, match='use_sigmoid'):
        RTDETRVarifocalLoss(use_sigmoid=False)
    with pytest.raises(ValueError, match='reduction'):
        RTDETRVarifocalLoss(reduction='max')
    with pytest.raises(ValueError, match='reduction'):
        RTDETRVarifocalLoss()(pred, target, reduction_override='max')
    with pytest.raises(ValueError, match='avg_factor'):
        RTDETRVarifocalLoss(reduction='sum')(pred, target, avg_factor=2.0)
