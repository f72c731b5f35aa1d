# Copyright (c) OpenMMLab. All rights reserved.
"""D-FINE's box encoding and its FGL and DDF losses against HF transformers'
D-FINE, executed.

The same inputs go through HF's ``weighting_function`` (of the model and
of the loss), ``distance2bbox``, ``DFineIntegral`` and
``DFineLoss.loss_local`` (FGL and DDF of one decoder layer, with the FGL
targets it makes by ``bbox2distance``), in HF's own venv
(:mod:`mmriformer.testing.hf_dfine_loss_oracle`), and through ours:
:func:`weighting_function`, :func:`distance_to_box`,
:func:`distribution_integral`, :func:`box_to_distance` with
:func:`distance_to_bins`, :class:`FineGrainedLocalizationLoss` and
:class:`DecoupledDistillationFocalLoss`, with D-FINE's weights built as
the classes' docstrings say. Gt edges fall inside W's range, beyond its
end and before its start, and one image has no gt box.

Without the oracle venv (no package index to build it from) the test
fails with the reason; it never skips.
"""
import pytest
import torch
import torch.nn.functional as F
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps

from mmriformer.models.losses import (DecoupledDistillationFocalLoss,
                                      FineGrainedLocalizationLoss)
from mmriformer.models.utils import (box_to_distance, distance_to_bins,
                                     distance_to_box, distribution_integral,
                                     weighting_function)
from mmriformer.testing import (EPS32, assert_float32_error_within,
                                assert_float64_close, hf_dfine_loss_oracle)
from mmriformer.testing.oracle import OracleUnavailable, run_oracle_script

REG_MAX, UP, REG_SCALE = 32, 0.5, 4.0
BINS = REG_MAX + 1
NUM_QUERIES, NUM_CLASSES = 40, 5
NUM_GTS = (12, 3, 0)
# Float64 on both sides; the forms round differently by ~1e-15.
FLOAT64_TOL = 1e-12


def random_inputs(generator):
    """Reference boxes and matched gt boxes (float32, as HF's FGL targets
    need), this layer's boxes near the gts, edge logits of this layer and
    the last one, the last one's class logits, and the function-level
    inputs."""
    def rand(*shape):
        return torch.rand(*shape, generator=generator, dtype=torch.float64)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    batch = len(NUM_GTS)
    ref_points = torch.cat([rand(batch, NUM_QUERIES, 2) * 0.6 + 0.2,
                            rand(batch, NUM_QUERIES, 2) * 0.3 + 0.05], -1)
    pred_boxes = torch.cat([rand(batch, NUM_QUERIES, 2) * 0.8 + 0.1,
                            rand(batch, NUM_QUERIES, 2) * 0.3 + 0.05], -1)
    gt_boxes, indices = [], []
    for image, num_gt in enumerate(NUM_GTS):
        queries = torch.randperm(NUM_QUERIES, generator=generator)[:num_gt]
        gts = torch.randperm(num_gt, generator=generator)
        ref = ref_points[image, queries]
        # Mostly near the reference; sides over 3x its own push edges
        # beyond W's end (offset 4 = 1.5 sides from the centre).
        boxes = torch.empty(num_gt, 4, dtype=torch.float64)
        boxes[gts] = torch.cat([
            ref[:, :2] + 0.3 * ref[:, 2:] * randn(num_gt, 2),
            ref[:, 2:] * torch.exp(0.8 * randn(num_gt, 2))
        ], -1)
        if num_gt:
            # A gt beside its reference: its left offset is before W(0).
            boxes[gts[0]] = ref[0] + ref.new_tensor([2.5, 0, 0, 0]) * ref[0, 2]
        gt_boxes.append(boxes.float())
        indices.append((queries, gts))
        # This layer's boxes of matched queries overlap their gt.
        pred_boxes[image, queries] = torch.cat([
            boxes[gts, :2] + 0.1 * boxes[gts, 2:] * randn(num_gt, 2),
            boxes[gts, 2:] * (1 + 0.2 * randn(num_gt, 2)).abs()
        ], -1)
    return dict(
        reg_max=REG_MAX, up=UP, reg_scale=REG_SCALE,
        pred_corners=randn(batch, NUM_QUERIES, 4 * BINS) * 2,
        teacher_corners=randn(batch, NUM_QUERIES, 4 * BINS) * 2,
        teacher_logits=randn(batch, NUM_QUERIES, NUM_CLASSES) * 2 - 2,
        ref_points=ref_points.float(), pred_boxes=pred_boxes,
        gt_boxes=gt_boxes, indices=indices, num_boxes=float(sum(NUM_GTS)),
        points=torch.cat([rand(50, 2), rand(50, 2) * 0.5 + 0.01], -1),
        distance=randn(50, 4) * 2,
        corners=randn(2, 7, 4 * BINS) * 3)


def matched_pairs(inputs, dtype):
    """Flat (image, query) indices of the matched queries, their reference
    boxes and their gt boxes (x1, y1, x2, y2) in ``dtype``."""
    image_ids = torch.cat([
        torch.full_like(queries, image)
        for image, (queries, _) in enumerate(inputs['indices'])
    ])
    query_ids = torch.cat([queries for queries, _ in inputs['indices']])
    gt_boxes = torch.cat([
        boxes[gts]
        for boxes, (_, gts) in zip(inputs['gt_boxes'], inputs['indices'])
    ])
    return ((image_ids, query_ids),
            inputs['ref_points'][image_ids, query_ids].to(dtype),
            bbox_cxcywh_to_xyxy(gt_boxes.to(dtype)))


def fgl_targets(inputs, dtype):
    """Our FGL targets: bin positions of the matched gt edges."""
    _, ref, gt = matched_pairs(inputs, dtype)
    project = weighting_function(REG_MAX, torch.tensor([UP], dtype=dtype),
                                 REG_SCALE)
    return distance_to_bins(box_to_distance(ref, gt, REG_SCALE),
                            project).reshape(-1)


def test_box_encoding_and_losses_equal_hf(tmp_path):
    inputs = random_inputs(torch.Generator().manual_seed(0))
    try:
        hf = run_oracle_script(hf_dfine_loss_oracle.__file__, inputs,
                               str(tmp_path))
    except OracleUnavailable as error:
        pytest.fail(f'The HF transformers oracle is unavailable, so D-FINE\'s '
                    f'box encoding and losses cannot be checked: {error}')

    # The functions, float64 on both sides.
    project = weighting_function(
        REG_MAX, torch.tensor([UP], dtype=torch.float64), REG_SCALE)
    assert project.dtype == torch.float64
    assert_float64_close(hf['project_model'], project, FLOAT64_TOL)
    assert_float64_close(hf['project_loss'], project, FLOAT64_TOL)
    assert_float64_close(
        hf['decoded'],
        distance_to_box(inputs['points'], inputs['distance'], REG_SCALE),
        FLOAT64_TOL)
    assert_float64_close(
        hf['integral'], distribution_integral(inputs['corners'], project),
        FLOAT64_TOL)

    # The FGL targets: HF makes them in float32 only (W, offsets and bin
    # weights), so they must be as close to ours in float64 as ours in
    # float32 are. Positions are continuous across bins, so a float32 step
    # that tips an edge into the next bin moves them no more.
    hf_left = hf['bin_left'].long()
    hf_targets = hf_left + hf['weight_right'].double()
    targets = fgl_targets(inputs, torch.float64)
    assert (targets == 0).any() and (targets == REG_MAX).any() and \
        ((targets > 0) & (targets < REG_MAX)).sum() > 20, \
        'the gt edges must fall before, inside and beyond W'
    assert_float32_error_within(targets, hf_targets.float(),
                                fgl_targets(inputs, torch.float32))
    # HF's left weight is its right one's complement, rounded once more.
    assert torch.allclose(hf['weight_left'].double(),
                          1 - hf['weight_right'].double(), rtol=0,
                          atol=EPS32)

    # FGL on HF's targets: HF's float32 bin weights (its left one within
    # 2 ** -24 of 1 - right) and IoU weights (2 ** -24 relative) move an
    # edge's term by at most 2 ** -23 * IoU * (CE_left + CE_right); mmdet's
    # mean divides by num_boxes + EPS32.
    pairs, _, gt = matched_pairs(inputs, torch.float64)
    ious = bbox_overlaps(bbox_cxcywh_to_xyxy(inputs['pred_boxes'][pairs]),
                         gt, is_aligned=True).repeat_interleave(4)
    corners = inputs['pred_corners'][pairs].reshape(-1, BINS)
    fgl = FineGrainedLocalizationLoss(loss_weight=1.0)(
        corners, hf_targets, ious, avg_factor=inputs['num_boxes'])
    both_ce = F.cross_entropy(corners, hf_left, reduction='none') + \
        F.cross_entropy(corners, hf_left + 1, reduction='none')
    bound = (2**-23 * (ious * both_ce).sum() + EPS32 * fgl) / \
        inputs['num_boxes'] + FLOAT64_TOL
    assert fgl.dtype == torch.float64 and fgl > 0.1
    assert abs(fgl - hf['loss_fgl']) <= bound, (
        f'FGL {fgl.item():.12f} but HF {hf["loss_fgl"].item():.12f}')

    # DDF, weighted as D-FINE does: the IoU for matched queries, the
    # teacher's top class score for the others.
    weight = inputs['teacher_logits'].sigmoid().amax(-1)
    weight[pairs] = ious[::4]
    matched = torch.zeros_like(weight, dtype=torch.bool)
    matched[pairs] = True
    ddf_loss = DecoupledDistillationFocalLoss(loss_weight=1.0)
    ddf = ddf_loss(inputs['pred_corners'].reshape(-1, BINS),
                   inputs['teacher_corners'].reshape(-1, BINS),
                   weight.reshape(-1).repeat_interleave(4),
                   matched.reshape(-1).repeat_interleave(4))
    # HF's sqrt-count weights and their sum are float32 (2 ** -23 relative
    # at most): reweighting the two means by that moves their average by at
    # most 2 ** -22 times the larger one, the sum's rounding by 2 ** -24 of
    # the loss; both are below 2 ** -21 times the largest edge term.
    temperature = ddf_loss.temperature
    student, teacher = (F.log_softmax(
        logits.unflatten(-1, (4, BINS)) / temperature, -1)
                        for logits in (inputs['pred_corners'],
                                       inputs['teacher_corners']))
    terms = weight[..., None] * temperature**2 * F.kl_div(
        student, teacher, reduction='none', log_target=True).sum(-1)
    bound = 2**-21 * terms.max() + FLOAT64_TOL
    assert ddf.dtype == torch.float64 and ddf > 0.1
    assert abs(ddf - hf['loss_ddf']) <= bound, (
        f'DDF {ddf.item():.12f} but HF {hf["loss_ddf"].item():.12f}')
