# Copyright (c) OpenMMLab. All rights reserved.
"""DFineHead's loss against HF transformers' D-FINE loss terms, executed.

The same decoder outputs (three layers with edge logits, the pre-bbox head,
the encoder's tokens) and targets go through ``DFineHead.loss`` with fixed
matchings (its Hungarian step replaced), and through HF's ``DFineLoss``
terms in its own venv (:mod:`mmriformer.testing.hf_dfine_criterion_oracle`)
on the same matchings, paired as D-FINE's criterion pairs them: VFL on each
output's own matching, L1, GIoU, FGL and DDF on the union our head made.
HF's own criterion does not form the union (it runs RT-DETR's loop), so it
is given ours. Every term of every output must agree.

Without the oracle venv (no package index to build it from) the test
fails with the reason; it never skips.
"""
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy

from mmriformer.testing import hf_dfine_criterion_oracle, make_det_samples
from mmriformer.testing.oracle import OracleUnavailable, run_oracle_script

NUM_LAYERS, NUM_QUERIES, NUM_CLASSES, REG_MAX = 3, 40, 5, 32
UP, REG_SCALE = 0.5, 4.0
NUM_GTS = (5, 2, 0)
HEIGHT, WIDTH = 480, 640
# Float32 on both sides (HF's FGL targets exist only in float32).
RTOL, ATOL = 1e-4, 1e-6
WEIGHTS = dict(loss_cls=1.0,
               loss_bbox=5.0,
               loss_iou=2.0,
               loss_fgl=0.15,
               loss_ddf=1.5)
HF_TERMS = dict(loss_cls='loss_vfl',
                loss_bbox='loss_bbox',
                loss_iou='loss_giou',
                loss_fgl='loss_fgl',
                loss_ddf='loss_ddf')


def random_case(generator):
    """Gt boxes, outputs with a few queries near them, and each output's
    matching (overlapping, so the union has a choice to make)."""

    def rand(*shape):
        return torch.rand(*shape, generator=generator)

    batch = len(NUM_GTS)
    gts = [
        torch.cat([rand(n, 2) * 0.6 + 0.2,
                   rand(n, 2) * 0.3 + 0.05], -1) for n in NUM_GTS
    ]
    labels = [
        torch.randint(NUM_CLASSES, (n, ), generator=generator) for n in NUM_GTS
    ]
    num_outputs = NUM_LAYERS + 2
    logits = torch.randn(
        num_outputs, batch, NUM_QUERIES, NUM_CLASSES, generator=generator) - 2
    boxes = torch.cat([
        rand(num_outputs, batch, NUM_QUERIES, 2) * 0.8 + 0.1,
        rand(num_outputs, batch, NUM_QUERIES, 2) * 0.3 + 0.05
    ], -1)
    assigned = torch.full((num_outputs, batch, NUM_QUERIES), -1)
    for image, gt in enumerate(gts):
        # Every output matches from the same 2n queries.
        pool = torch.randperm(NUM_QUERIES, generator=generator)[:2 * len(gt)]
        for output in range(num_outputs):
            queries = pool[torch.randperm(len(pool),
                                          generator=generator)[:len(gt)]]
            assigned[output, image, queries] = torch.arange(len(gt))
            boxes[output, image, queries] = torch.cat([
                gt[:, :2] +
                0.1 * gt[:, 2:] * torch.randn(len(gt), 2, generator=generator),
                gt[:, 2:] * (1 + 0.2 * rand(len(gt), 2))
            ], -1)
    corners = torch.randn(
        NUM_LAYERS, batch, NUM_QUERIES, 4 *
        (REG_MAX + 1), generator=generator) * 2
    refs = torch.cat([
        rand(batch, NUM_QUERIES, 2) * 0.6 + 0.2,
        rand(batch, NUM_QUERIES, 2) * 0.3 + 0.05
    ], -1)
    return gts, labels, logits, boxes, assigned, corners, refs


def pairs(assigned):
    """(query indices, gt indices) per image of an (N, Q) assignment."""
    return [((row >= 0).nonzero()[:, 0], row[row >= 0]) for row in assigned]


def test_loss_terms_equal_hf(tmp_path, monkeypatch):
    gts, labels, logits, boxes, assigned, corners, refs = random_case(
        torch.Generator().manual_seed(0))
    head = MODELS.build(
        dict(type='DFineHead',
             num_classes=NUM_CLASSES,
             embed_dims=32,
             num_pred_layer=NUM_LAYERS + 1,
             as_two_stage=True,
             reg_max=REG_MAX,
             loss_cls=dict(type='RTDETRVarifocalLoss',
                           use_sigmoid=True,
                           alpha=0.75,
                           gamma=2.0,
                           loss_weight=1.0),
             loss_bbox=dict(type='L1Loss', loss_weight=5.0),
             loss_iou=dict(type='GIoULoss', loss_weight=2.0)))
    # Fixed matchings, in the order the head asks: layers, pre, encoder.
    matchings = iter(assigned)
    monkeypatch.setattr(head, '_assign', lambda *args: next(matchings))
    scale = torch.tensor([WIDTH, HEIGHT, WIDTH, HEIGHT])
    samples = make_det_samples([(HEIGHT, WIDTH)] * len(gts),
                               [(bbox_cxcywh_to_xyxy(gt) * scale).tolist()
                                for gt in gts], labels)
    ours = head.loss(logits[:NUM_LAYERS], boxes[:NUM_LAYERS], corners, refs,
                     logits[NUM_LAYERS], boxes[NUM_LAYERS],
                     logits[NUM_LAYERS + 1], boxes[NUM_LAYERS + 1],
                     torch.tensor([UP]), torch.tensor([REG_SCALE]), samples)
    union = head._union(list(assigned), [s.gt_instances for s in samples])
    assert not torch.equal(union, assigned[NUM_LAYERS - 1]), \
        'the union must differ from the last layer\'s matching'

    names = [f'd{i}.' for i in range(NUM_LAYERS - 1)] + ['', 'pre.', 'enc_']
    outputs = []
    for i, name in enumerate(names):
        output = dict(name=name,
                      logits=logits[i],
                      pred_boxes=boxes[i],
                      own=pairs(assigned[i]))
        if i < NUM_LAYERS:
            output.update(pred_corners=corners[i],
                          ref_points=refs,
                          teacher_corners=corners[-1],
                          teacher_logits=logits[NUM_LAYERS - 1])
        outputs.append(output)
    inputs = dict(num_classes=NUM_CLASSES,
                  reg_max=REG_MAX,
                  up=UP,
                  reg_scale=REG_SCALE,
                  outputs=outputs,
                  union=pairs(union),
                  targets=[
                      dict(class_labels=lab, boxes=gt)
                      for lab, gt in zip(labels, gts)
                  ],
                  num_boxes=float(sum(NUM_GTS)),
                  num_boxes_union=float((union >= 0).sum()))
    try:
        hf = run_oracle_script(hf_dfine_criterion_oracle.__file__, inputs,
                               str(tmp_path))
    except OracleUnavailable as error:
        pytest.fail(f'The HF transformers oracle is unavailable, so the '
                    f'D-FINE head\'s loss cannot be checked: {error}')

    checked = 0
    for name in names:
        for term, hf_term in HF_TERMS.items():
            key = name + term
            if key not in ours:
                continue
            mine = ours[key].item() / WEIGHTS[term]
            theirs = hf[name][hf_term].item()
            assert abs(mine - theirs) <= ATOL + RTOL * abs(theirs), (
                f'{key} = {mine:.8f} but HF {hf_term} = {theirs:.8f}')
            checked += 1
    assert checked == len(ours) == 5 * (NUM_LAYERS - 1) + 4 + 3 + 3
