# Copyright (c) OpenMMLab. All rights reserved.
"""D-FINE's Fine-Grained Localization (FGL) and Decoupled Distillation Focal
(DDF) losses against hand computation in float64 (against HF's D-FINE
executed: see test_dfine_loss_parity.py)."""
import math

import pytest
import torch
from mmdet.registry import MODELS

from mmriformer.models.losses import (DecoupledDistillationFocalLoss,
                                      FineGrainedLocalizationLoss,
                                      fine_grained_localization_loss)
from mmriformer.testing import EPS32

F64 = torch.float64
# Python floats against torch in float64: a few roundings of values near
# 10; a wrong neighbour weight, temperature or balance is off by 1e-2.
TOL = 1e-12


def cross_entropy(logits, k):
    """-log softmax(logits)[k] in Python floats."""
    top = max(logits)
    return top + math.log(sum(math.exp(x - top) for x in logits)) - logits[k]


def softmax(logits):
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    return [e / sum(exps) for e in exps]


def kl(teacher, student, temperature):
    """KL(softmax(teacher / T) || softmax(student / T)) in Python floats."""
    p = softmax([x / temperature for x in teacher])
    q = softmax([x / temperature for x in student])
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def fgl_inputs():
    """reg_max 8: targets at W's start, on an integer bin, between bins,
    just before the last bin and at W's end."""
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(5, 9, generator=gen, dtype=F64) * 2
    target = torch.tensor([0., 3., 3.25, 7.5, 8.], dtype=F64)
    # Soft labels by hand: (bin, weight) pairs.
    labels = [[(0, 1.)], [(3, 1.)], [(3, .75), (4, .25)], [(7, .5), (8, .5)],
              [(8, 1.)]]
    return pred, target, labels


def test_fgl_elementwise_by_hand():
    pred, target, labels = fgl_inputs()
    got = fine_grained_localization_loss(pred, target,
                                                reduction='none')
    expected = [
        sum(w * cross_entropy(pred[i].tolist(), k) for k, w in label)
        for i, label in enumerate(labels)
    ]
    assert got.dtype == F64 and got.shape == (5, )
    assert torch.allclose(got, torch.tensor(expected, dtype=F64), rtol=0,
                          atol=TOL)


def test_fgl_weight_reduction_and_loss_weight():
    pred, target, _ = fgl_inputs()
    elementwise = fine_grained_localization_loss(pred, target,
                                                reduction='none')
    ious = torch.tensor([0.9, 0.5, 0.0, 0.3, 1.0], dtype=F64)
    loss = MODELS.build(dict(type='FineGrainedLocalizationLoss'))
    assert isinstance(loss, FineGrainedLocalizationLoss)
    assert loss.loss_weight == 0.15 and loss.reduction == 'mean'
    weighted = (elementwise * ious).sum().item()
    # D-FINE's form: IoU-weighted sum over the number of gt boxes (mmdet
    # adds EPS32 to the divisor).
    assert loss(pred, target, ious, avg_factor=2.).item() == pytest.approx(
        0.15 * weighted / 2, rel=EPS32, abs=0)
    assert loss(pred, target, ious,
                reduction_override='sum').item() == pytest.approx(
                    0.15 * weighted, rel=TOL, abs=0)
    assert torch.allclose(loss(pred, target, reduction_override='none'),
                          0.15 * elementwise, rtol=0, atol=TOL)


def test_fgl_gradient_reaches_logits_only():
    pred, target, _ = fgl_inputs()
    pred.requires_grad_(True)
    target.requires_grad_(True)
    FineGrainedLocalizationLoss()(pred, target).backward()
    assert pred.grad.abs().sum() > 0 and target.grad is None
    # The soft label's gradient: softmax minus the label.
    probs = pred.detach().softmax(-1)
    label = torch.zeros_like(probs)
    label[2, 3], label[2, 4] = 0.75, 0.25
    assert torch.allclose(pred.grad[2], 0.15 * (probs[2] - label[2]) / 5,
                          rtol=0, atol=TOL)


def test_fgl_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r'\(N, reg_max \+ 1\)'):
        fine_grained_localization_loss(torch.zeros(4, 4, 9), torch.zeros(4),
                                       reduction='none')


def ddf_inputs():
    """reg_max 4: two matched and four unmatched edges."""
    gen = torch.Generator().manual_seed(1)
    pred = torch.randn(6, 5, generator=gen, dtype=F64) * 3
    target = torch.randn(6, 5, generator=gen, dtype=F64) * 3
    weight = torch.tensor([0.8, 0.6, 0.3, 0.9, 0.05, 0.5], dtype=F64)
    matched = torch.tensor([True, False, False, True, False, False])
    return pred, target, weight, matched


def ddf_by_hand(pred, target, weight, matched, temperature=5., counts=None):
    terms = [
        w * temperature**2 * kl(t, p, temperature) for p, t, w in zip(
            pred.tolist(), target.tolist(), weight.tolist())
    ]
    pos = [t for t, m in zip(terms, matched.tolist()) if m]
    neg = [t for t, m in zip(terms, matched.tolist()) if not m]
    means = [sum(group) / len(group) if group else 0. for group in (pos, neg)]
    scales = [math.sqrt(c) for c in counts or (len(pos), len(neg))]
    return (scales[0] * means[0] + scales[1] * means[1]) / sum(scales)


def test_ddf_by_hand():
    pred, target, weight, matched = ddf_inputs()
    loss = MODELS.build(dict(type='DecoupledDistillationFocalLoss'))
    assert isinstance(loss, DecoupledDistillationFocalLoss)
    assert loss.loss_weight == 1.5 and loss.temperature == 5.
    got = loss(pred, target, weight, matched)
    assert got.dtype == F64 and got.shape == ()
    assert got.item() == pytest.approx(
        1.5 * ddf_by_hand(pred, target, weight, matched), rel=TOL, abs=0)
    # The temperature enters both the softmaxes and the T ** 2 factor.
    loss = DecoupledDistillationFocalLoss(temperature=2., loss_weight=1.)
    assert loss(pred, target, weight, matched).item() == pytest.approx(
        ddf_by_hand(pred, target, weight, matched, 2.), rel=TOL, abs=0)


def test_ddf_balanced_by_given_counts():
    """D-FINE's denoising layers: the means weighted by the square roots
    of other counts (the matching queries')."""
    pred, target, weight, matched = ddf_inputs()
    loss = DecoupledDistillationFocalLoss(loss_weight=1.)
    got = loss(pred, target, weight, matched,
               counts=(torch.tensor(12), torch.tensor(300)))
    assert got.item() == pytest.approx(
        ddf_by_hand(pred, target, weight, matched, counts=(12, 300)),
        rel=TOL, abs=0)


@pytest.mark.parametrize('num_matched', [0, 6])
def test_ddf_with_one_group_only(num_matched):
    pred, target, weight, _ = ddf_inputs()
    matched = torch.arange(6) < num_matched
    loss = DecoupledDistillationFocalLoss(loss_weight=1.)
    expected = ddf_by_hand(pred, target, weight, matched)
    assert loss(pred, target, weight, matched).item() == pytest.approx(
        expected, rel=TOL, abs=0)


def test_ddf_is_zero_without_edges_or_difference():
    loss = DecoupledDistillationFocalLoss()
    empty = torch.zeros(0, 33, dtype=F64, requires_grad=True)
    got = loss(empty, empty.detach(), torch.zeros(0, dtype=F64),
               torch.zeros(0, dtype=torch.bool))
    assert got.item() == 0
    got.backward()
    pred, _, weight, matched = ddf_inputs()
    # A constant shift per edge leaves the distribution unchanged.
    assert abs(loss(pred, pred + 3., weight, matched).item()) < TOL


def test_ddf_gradient_reaches_student_only():
    pred, target, weight, matched = ddf_inputs()
    pred.requires_grad_(True)
    target.requires_grad_(True)
    DecoupledDistillationFocalLoss()(pred, target, weight, matched).backward()
    assert pred.grad.abs().sum() > 0 and target.grad is None


def test_ddf_rejects_bad_settings_and_shapes():
    with pytest.raises(ValueError, match='temperature must be > 0'):
        DecoupledDistillationFocalLoss(temperature=0.)
    pred, target, weight, matched = ddf_inputs()
    with pytest.raises(ValueError, match='weight and matched'):
        DecoupledDistillationFocalLoss()(pred, target, weight[:4], matched)
