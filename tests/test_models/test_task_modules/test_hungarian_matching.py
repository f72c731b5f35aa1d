# Copyright (c) OpenMMLab. All rights reserved.
"""mmdet's HungarianAssigner with RT-DETR's matching costs.

The inputs are built the way mmdet 3.3.0 ``DETRHead._get_targets_single``
builds them: ``scores`` are the class logits, ``bboxes`` are the predicted
normalised cxcywh boxes turned into pixel xyxy, gt boxes are pixel xyxy and
``img_meta`` carries ``img_shape`` as (h, w).
"""
import pytest
import torch
from mmdet.registry import TASK_UTILS
from mmengine.structures import InstanceData
from scipy.optimize import linear_sum_assignment

# RT-DETR matcher: cost_class 2 (focal, alpha 0.25, gamma 2), cost_bbox 5
# (L1 on normalised cxcywh), cost_giou 2 (-GIoU).
MATCH_COSTS = [
    dict(type='FocalLossCost', weight=2.0),
    dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
    dict(type='IoUCost', iou_mode='giou', weight=2.0)
]
IMG_SHAPE = (480, 640)  # (h, w); not square, to catch swapped factors


def build_assigner():
    return TASK_UTILS.build(
        dict(type='HungarianAssigner', match_costs=MATCH_COSTS))


def cxcywh_to_xyxy(boxes):
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def to_pixels(boxes):
    h, w = IMG_SHAPE
    return boxes * boxes.new_tensor([w, h, w, h])


def assign(logits, pred_cxcywh, gt_cxcywh, gt_labels):
    """Run the assigner on normalised cxcywh boxes, as DETRHead does."""
    pred_instances = InstanceData(
        scores=logits, bboxes=to_pixels(cxcywh_to_xyxy(pred_cxcywh)))
    gt_instances = InstanceData(
        bboxes=to_pixels(cxcywh_to_xyxy(gt_cxcywh)), labels=gt_labels)
    return build_assigner().assign(
        pred_instances=pred_instances,
        gt_instances=gt_instances,
        img_meta=dict(img_shape=IMG_SHAPE))


def pairwise_giou(boxes1, boxes2):
    """GIoU of every pair of xyxy boxes, shape (len(boxes1), len(boxes2))."""
    b1, b2 = boxes1[:, None], boxes2[None]
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    inter_w = (torch.minimum(b1[..., 2], b2[..., 2]) -
               torch.maximum(b1[..., 0], b2[..., 0])).clamp(min=0)
    inter_h = (torch.minimum(b1[..., 3], b2[..., 3]) -
               torch.maximum(b1[..., 1], b2[..., 1])).clamp(min=0)
    inter = inter_w * inter_h
    union = area1 + area2 - inter
    hull_w = (
        torch.maximum(b1[..., 2], b2[..., 2]) -
        torch.minimum(b1[..., 0], b2[..., 0]))
    hull_h = (
        torch.maximum(b1[..., 3], b2[..., 3]) -
        torch.minimum(b1[..., 1], b2[..., 1]))
    hull = hull_w * hull_h
    return inter / union - (hull - union) / hull


def rtdetr_cost(logits, pred_cxcywh, gt_cxcywh, gt_labels):
    """RT-DETR's matcher cost (matcher.py), in float64."""
    alpha, gamma, eps = 0.25, 2.0, 1e-8
    p = logits.double().sigmoid()[:, gt_labels]
    pos = alpha * (1 - p)**gamma * -torch.log(p + eps)
    neg = (1 - alpha) * p**gamma * -torch.log(1 - p + eps)
    cost_class = pos - neg
    pred, gt = pred_cxcywh.double(), gt_cxcywh.double()
    cost_bbox = (pred[:, None] - gt[None]).abs().sum(-1)
    cost_giou = -pairwise_giou(cxcywh_to_xyxy(pred), cxcywh_to_xyxy(gt))
    return 2 * cost_class + 5 * cost_bbox + 2 * cost_giou


def test_known_assignment():
    num_classes = 3
    gt_cxcywh = torch.tensor([[0.30, 0.30, 0.20, 0.20],
                              [0.70, 0.40, 0.30, 0.20],
                              [0.50, 0.80, 0.40, 0.20]])  # yapf: disable
    gt_labels = torch.tensor([2, 0, 1])
    # Queries 4, 2 and 1 reproduce gts 0, 1 and 2 exactly and are the most
    # confident in their classes. Each pair then has the lowest cost of its
    # gt column in every term, so this assignment is optimal. Queries 0
    # and 3 are decoys: a shifted copy of gt 0 with the right class, and an
    # exact box of gt 1 with a weaker score.
    pred_cxcywh = torch.tensor([[0.33, 0.32, 0.20, 0.20],
                                [0.50, 0.80, 0.40, 0.20],
                                [0.70, 0.40, 0.30, 0.20],
                                [0.70, 0.40, 0.30, 0.20],
                                [0.30, 0.30, 0.20, 0.20],
                                [0.10, 0.90, 0.05, 0.05]])
    logits = torch.full((6, num_classes), -4.0)
    logits[4, 2] = 3.0
    logits[2, 0] = 3.0
    logits[1, 1] = 3.0
    logits[0, 2] = 2.0
    logits[3, 0] = 1.0

    result = assign(logits, pred_cxcywh, gt_cxcywh, gt_labels)

    assert result.num_gts == 3
    assert result.gt_inds.tolist() == [0, 3, 2, 0, 1, 0]
    assert result.labels.tolist() == [-1, 1, 0, -1, 2, -1]


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_assignment_is_optimal(seed):
    num_queries, num_gts, num_classes = 20, 6, 5
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(num_queries, num_classes, generator=gen)
    pred_cxcywh = torch.rand(num_queries, 4, generator=gen) * 0.8 + 0.1
    gt_wh = torch.rand(num_gts, 2, generator=gen) * 0.4 + 0.05
    gt_cxcy = gt_wh / 2 + torch.rand(num_gts, 2, generator=gen) * (1 - gt_wh)
    gt_cxcywh = torch.cat([gt_cxcy, gt_wh], -1)
    gt_labels = torch.randint(num_classes, (num_gts, ), generator=gen)

    result = assign(logits, pred_cxcywh, gt_cxcywh, gt_labels)

    cost = rtdetr_cost(logits, pred_cxcywh, gt_cxcywh, gt_labels)
    rows, cols = linear_sum_assignment(cost.numpy())
    expected = torch.zeros(num_queries, dtype=torch.long)
    expected[torch.from_numpy(rows)] = torch.from_numpy(cols) + 1
    assert result.gt_inds.tolist() == expected.tolist()
    matched = result.labels >= 0
    matched_gts = result.gt_inds[matched] - 1
    assert result.labels[matched].tolist() == gt_labels[matched_gts].tolist()

    query_inds = torch.nonzero(result.gt_inds > 0).squeeze(1)
    total = cost[query_inds, result.gt_inds[query_inds] - 1].sum()
    torch.testing.assert_close(total, cost[rows, cols].sum())


def test_no_gt_is_all_background():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 5, generator=gen)
    pred_cxcywh = torch.rand(20, 4, generator=gen) * 0.8 + 0.1

    result = assign(logits, pred_cxcywh, torch.zeros(0, 4),
                    torch.zeros(0, dtype=torch.long))

    assert result.num_gts == 0
    assert result.gt_inds.tolist() == [0] * 20
    assert result.labels.tolist() == [-1] * 20
