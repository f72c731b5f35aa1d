# Copyright (c) OpenMMLab. All rights reserved.
import math

import pytest
import torch
from mmdet.registry import MODELS

from mmriformer.models.losses import RTDETRVarifocalLoss, varifocal_loss
from mmriformer.testing import EPS32, assert_float64_close

# The loss runs in float64 against a float64 reference: BCE-with-logits and
# the log-of-sigmoid formula round differently, by ~10 * eps64 (2e-15) of
# the loss scale for logits within +-8, far inside assert_float64_close's
# 1e-10; a wrong weight (alpha, gamma, the IoU, the mask) is off by >= 1e-2.


def reference_elementwise(pred, target, positive, alpha=0.75, gamma=2.0):
    """RT-DETR's VFL written out one element at a time, in float64 (Python
    floats)."""
    out = torch.zeros(pred.shape, dtype=torch.float64)
    for i in range(pred.shape[0]):
        for j in range(pred.shape[1]):
            x, t = float(pred[i, j]), float(target[i, j])
            p = 1 / (1 + math.exp(-x))
            onehot = 1.0 if positive[i, j] else 0.0
            w = alpha * p**gamma * (1 - onehot) + t
            bce = -(t * math.log(p) + (1 - t) * math.log(1 - p))
            out[i, j] = w * bce
    return out


def make_inputs(num=6, num_classes=4, seed=0):
    """Logits and an IoU-valued soft one-hot with two background rows."""
    gen = torch.Generator().manual_seed(seed)
    pred = torch.randn(num, num_classes, generator=gen) * 2
    labels = torch.randint(num_classes, (num, ), generator=gen)
    ious = torch.rand(num, generator=gen) * 0.8 + 0.1
    target = torch.zeros(num, num_classes)
    target[torch.arange(num), labels] = ious
    target[-2:] = 0
    return pred.double(), target.double()


def test_elementwise_matches_reference():
    pred, target = make_inputs()
    loss = varifocal_loss(pred, target)
    expected = reference_elementwise(pred, target, target > 0)
    assert loss.shape == pred.shape
    assert_float64_close(expected, loss)

    loss = varifocal_loss(pred, target, alpha=0.5, gamma=1.5)
    expected = reference_elementwise(pred, target, target > 0, 0.5, 1.5)
    assert_float64_close(expected, loss)


def test_module_reductions_and_loss_weight():
    pred, target = make_inputs()
    elementwise = reference_elementwise(pred, target, target > 0)
    loss_cfg = dict(type='RTDETRVarifocalLoss', loss_weight=3.0)
    criterion = MODELS.build(loss_cfg)
    assert isinstance(criterion, RTDETRVarifocalLoss)
    assert criterion.use_sigmoid

    assert_float64_close(3 * elementwise.mean(), criterion(pred, target))
    assert_float64_close(3 * elementwise.sum(),
                         criterion(pred, target, reduction_override='sum'))
    assert_float64_close(3 * elementwise,
                         criterion(pred, target, reduction_override='none'))
    # RT-DETR normalises by the number of gt boxes; mmdet's
    # weight_reduce_loss adds float32's eps to the divisor.
    assert_float64_close(3 * elementwise.sum() / (4.0 + EPS32),
                         criterion(pred, target, avg_factor=4.0))


def test_weight():
    pred, target = make_inputs()
    elementwise = reference_elementwise(pred, target, target > 0)
    criterion = RTDETRVarifocalLoss()
    weight = torch.rand(pred.shape, generator=torch.Generator().manual_seed(1),
                        dtype=torch.float64)
    assert_float64_close((elementwise * weight).sum() / (2.0 + EPS32),
                         criterion(pred, target, weight, avg_factor=2.0))
    # A per-sample weight scales whole rows.
    row_weight = torch.tensor([1., 0., 2., 1., 0., 1.], dtype=torch.float64)
    assert_float64_close(
        (elementwise * row_weight[:, None]).sum(),
        criterion(pred, target, row_weight, reduction_override='sum'))


def test_matched_slot_with_zero_iou():
    pred, target = make_inputs()
    # Query 4 is matched to class 1 but its box does not overlap the gt.
    positive = target > 0
    positive[4, 1] = True
    criterion = RTDETRVarifocalLoss(reduction='none')

    loss = criterion(pred, target, positive=positive)
    expected = reference_elementwise(pred, target, positive)
    assert_float64_close(expected, loss)
    # Weight = IoU = 0 for that slot, unlike the default negative treatment.
    assert loss[4, 1] == 0
    assert criterion(pred, target)[4, 1] > 0
    torch.testing.assert_close(loss[4, 2:], criterion(pred, target)[4, 2:])


def test_gradient_uses_detached_weight():
    pred, target = make_inputs()
    alpha, gamma = 0.75, 2.0
    onehot = (target > 0).double()

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
    # float64 autograd through two formulas: they differ by ~1e-15 of the
    # gradient scale; a live weight adds a term of ~1e-1 (checked below).
    assert_float64_close(formula(detach=True), x.grad)
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
