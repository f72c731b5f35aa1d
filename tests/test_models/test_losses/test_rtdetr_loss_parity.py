# Copyright (c) OpenMMLab. All rights reserved.
"""Our RT-DETR loss against HF transformers' ``RTDetrLoss``, executed.

The same decoder and encoder outputs and targets go through HF's loss, in
its own venv (:mod:`mmriformer.testing.hf_rtdetr_loss_oracle`), and through
``RTDETRHead.loss`` built from the base model config, as the detector calls
it, with denoising off. Every term of every layer (VFL, L1, GIoU of the
final layer, each earlier decoder layer and the encoder's selected tokens)
must agree, and so must every layer's Hungarian matching, which shows that
the matching costs agree.

Without the oracle venv (no package index to build it from) the test
fails with the reason; it never skips.
"""
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmriformer.testing import hf_rtdetr_loss_oracle
from mmriformer.testing.oracle import OracleUnavailable, run_oracle_script

ROOT = Path(__file__).parents[3]
BASE_MODEL = ROOT / 'configs/_base_/models/rtdetr_riformer.py'
# (h, w) of each image: not square, and different, to catch swapped or
# shared normalisation factors.
IMAGE_SHAPES = ((640, 640), (480, 640), (800, 544), (512, 768), (608, 416))
# One image with a single box and one without any.
NUM_GTS = (6, 1, 11, 0, 3)
# Both sides run in float64. The only systematic differences are mmdet's
# eps: weight_reduce_loss divides by avg_factor + 1.2e-7 (relative 1.2e-7
# / 21 boxes = 6e-9, so under 6e-8 on terms below 10) and bbox_overlaps
# clamps unions at 1e-6 px^2 (relative 1e-9 on boxes of over 100 px^2);
# rounding over 5 x 300 x 80 float64 elements is below 1e-11. 1e-5 leaves
# a wide margin.
ATOL = 1e-5
TERMS = {'loss_cls': 'loss_vfl', 'loss_bbox': 'loss_bbox',
         'loss_iou': 'loss_giou'}


def random_outputs(gts, num_queries, num_classes, generator):
    """Logits and sigmoid boxes of one layer for every image.

    Logits scatter around RT-DETR's initial class bias (prior 0.01). Two
    queries per gt box sit near it (jittered, with the gt class scored
    higher), so that matched IoUs are positive and the class cost decides
    between near candidates; the rest are random boxes.
    """
    logits = torch.randn(len(gts), num_queries, num_classes,
                         generator=generator, dtype=torch.float64) * 1.5 - 4.6
    centres = torch.rand(len(gts), num_queries, 2, generator=generator,
                         dtype=torch.float64) * 0.9 + 0.05
    sizes = torch.rand(len(gts), num_queries, 2, generator=generator,
                       dtype=torch.float64) * 0.38 + 0.02
    boxes = torch.cat([centres, sizes], -1)
    for i, (labels, gt_boxes) in enumerate(gts):
        near = torch.randperm(num_queries, generator=generator)
        near = near[:2 * len(labels)].view(2, -1)
        for queries in near:
            noise = torch.randn(len(labels), 4, generator=generator,
                                dtype=torch.float64)
            boxes[i, queries, :2] = gt_boxes[:, :2] + \
                0.1 * gt_boxes[:, 2:] * noise[:, :2]
            boxes[i, queries, 2:] = gt_boxes[:, 2:] * (1 + 0.1 * noise[:, 2:])
            logits[i, queries, labels] += 4 * torch.rand(
                len(labels), generator=generator, dtype=torch.float64)
    return logits, boxes


def random_gts(num_classes, generator):
    """Labels and normalised (cx, cy, w, h) boxes inside each image."""
    gts = []
    for num_gt in NUM_GTS:
        labels = torch.randint(num_classes, (num_gt, ), generator=generator)
        centres = torch.rand(num_gt, 2, generator=generator,
                             dtype=torch.float64) * 0.6 + 0.2
        sizes = torch.rand(num_gt, 2, generator=generator,
                           dtype=torch.float64) * 0.3 + 0.05
        gts.append((labels, torch.cat([centres, sizes], -1)))
    return gts


def data_samples(gts):
    """DetDataSamples with the gt boxes in pixels (x1, y1, x2, y2)."""
    samples = []
    for (h, w), (labels, boxes) in zip(IMAGE_SHAPES, gts):
        sample = DetDataSample(metainfo=dict(img_shape=(h, w),
                                             ori_shape=(h, w),
                                             batch_input_shape=(h, w),
                                             scale_factor=(1., 1.)))
        xyxy = torch.cat([boxes[:, :2] - boxes[:, 2:] / 2,
                          boxes[:, :2] + boxes[:, 2:] / 2], -1)
        sample.gt_instances = InstanceData(
            labels=labels, bboxes=xyxy * xyxy.new_tensor([w, h, w, h]))
        samples.append(sample)
    return samples


def build_head():
    """The head of the base config, as :class:`RTDETR` builds it."""
    model = Config.fromfile(BASE_MODEL).model
    head = model.bbox_head
    head.update(num_pred_layer=model.decoder.num_layers + 1,
                train_cfg=model.train_cfg,
                test_cfg=model.test_cfg)
    return MODELS.build(head), model.decoder.num_layers, model.num_queries


def test_loss_terms_and_matching_equal_hf(tmp_path, monkeypatch):
    head, num_layers, num_queries = build_head()
    num_classes = head.num_classes
    generator = torch.Generator().manual_seed(0)
    gts = random_gts(num_classes, generator)
    layers = [
        random_outputs(gts, num_queries, num_classes, generator)
        for _ in range(num_layers + 1)
    ]
    logits = torch.stack([layer[0] for layer in layers[:-1]])
    boxes = torch.stack([layer[1] for layer in layers[:-1]])
    enc_logits, enc_boxes = layers[-1]

    inputs = dict(logits=logits, boxes=boxes, enc_logits=enc_logits,
                  enc_boxes=enc_boxes, labels=[labels for labels, _ in gts],
                  gt_boxes=[gt_boxes for _, gt_boxes in gts])
    try:
        hf = run_oracle_script(hf_rtdetr_loss_oracle.__file__, inputs,
                               str(tmp_path))
    except OracleUnavailable as error:
        pytest.fail(f'The HF transformers oracle is unavailable, so the '
                    f'loss cannot be checked: {error}')

    # Record every assignment; the head assigns layer by layer (each image
    # in turn), then the encoder's outputs.
    assignments = []
    assign = head.assigner.assign

    def recording_assign(*args, **kwargs):
        result = assign(*args, **kwargs)
        assignments.append(result.gt_inds)
        return result

    monkeypatch.setattr(head.assigner, 'assign', recording_assign)
    ours = head.loss(logits, boxes, enc_logits, enc_boxes, data_samples(gts),
                     dn_meta=None)

    # The layers on both sides: the final one, decoder layers 0 .. L-2 and
    # the encoder.
    prefixes = ['', *(f'd{i}.' for i in range(num_layers - 1)), 'enc_']
    suffixes = ['', *(f'_aux_{i}' for i in range(num_layers))]

    # Matching first: different costs would show in the terms too, but
    # less plainly. Ours come per layer 0 .. L-1 then the encoder.
    num_images = len(IMAGE_SHAPES)
    assert len(assignments) == (num_layers + 1) * num_images
    ours_by_layer = [
        assignments[i * num_images:(i + 1) * num_images]
        for i in range(num_layers + 1)
    ]
    ours_by_layer = [ours_by_layer[num_layers - 1],
                     *ours_by_layer[:num_layers - 1], ours_by_layer[-1]]
    for prefix, mine, theirs in zip(prefixes, ours_by_layer, hf['indices']):
        for image, (gt_inds, (queries, gt_ids)) in enumerate(
                zip(mine, theirs)):
            expected = torch.zeros(num_queries, dtype=torch.long)
            expected[queries] = gt_ids + 1
            assert torch.equal(gt_inds, expected), (
                f'layer {prefix.rstrip("._") or "final"}, image {image}: '
                f'our matching differs from HF\'s')

    assert set(ours) == {p + t for p in prefixes for t in TERMS}
    assert set(hf['losses']) == {t + s for s in suffixes
                                 for t in TERMS.values()}
    for prefix, suffix in zip(prefixes, suffixes):
        for term, hf_term in TERMS.items():
            mine, theirs = ours[prefix + term], hf['losses'][hf_term + suffix]
            assert mine.dtype == theirs.dtype == torch.float64
            assert abs(mine.item() - theirs.item()) <= ATOL, (
                f'{prefix}{term} = {mine.item():.10f} but HF '
                f'{hf_term}{suffix} = {theirs.item():.10f}')
