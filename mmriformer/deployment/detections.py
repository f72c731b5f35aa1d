# Copyright (c) OpenMMLab. All rights reserved.
"""Comparing two detectors' top-k detections of the same image."""
from typing import Dict, Sequence

import torch
from torch import Tensor


def compare_detections(ours: Dict[str, Tensor],
                       reference: Dict[str, Tensor],
                       image_size: Sequence[int],
                       score_tol: float = 1e-4,
                       box_tol: float = 0.1,
                       max_unmatched: float = 0.) -> Dict[str, float]:
    """Check two top-k detection lists for the same image, robust to ties.

    Both are clipped to the image first (mmdet's DETR head clamps boxes
    to it, HF does not). Scores, sorted, must agree elementwise to
    ``score_tol``. Each detection of ``ours`` must then have its own
    partner in ``reference`` with the same label, a score within
    ``score_tol`` and every box coordinate within ``box_tol`` pixels.
    Detections whose score is within ``score_tol`` of the k-th (last) score
    are exempt: a near-tie at the cut can swap which one is kept. With
    ``max_unmatched``, that fraction of the k detections may lack a partner:
    in a lower precision a near-tie in the detector's own top-k query
    selection can swap a query, which brings in a detection of another box.

    Args:
        ours (dict): ``scores`` (k,), ``labels`` (k,), ``bboxes`` (k, 4)
            xyxy pixels.
        reference (dict): The same, boxes under ``boxes`` or ``bboxes``.
        image_size (Sequence[int]): (H, W) to clip to.
        score_tol (float): Defaults to 1e-4.
        box_tol (float): Pixels. Defaults to 0.1.
        max_unmatched (float): Fraction of the detections that may lack a
            partner. Defaults to 0.

    Returns:
        dict: ``max_score_diff``, ``max_box_diff`` (over matched pairs),
        ``matched``, ``exempt``, ``unmatched``.

    Raises:
        AssertionError: Naming the first detection without a partner.
    """
    height, width = image_size

    def unpack(dets):
        boxes = dets.get('bboxes', dets.get('boxes')).double().clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        return dets['scores'].double(), dets['labels'].long(), boxes

    scores_a, labels_a, boxes_a = unpack(ours)
    scores_b, labels_b, boxes_b = unpack(reference)
    assert len(scores_a) == len(scores_b), (
        f'{len(scores_a)} detections against {len(scores_b)}')
    sorted_diff = (scores_a.sort(descending=True)[0] -
                   scores_b.sort(descending=True)[0]).abs().max().item()
    assert sorted_diff <= score_tol, (
        f'sorted scores differ by {sorted_diff:.3g} > {score_tol}')
    cut = min(scores_a.min(), scores_b.min()).item() + score_tol
    used = torch.zeros(len(scores_b), dtype=torch.bool)
    max_score, max_box, matched, exempt, unmatched = 0., 0., 0, 0, 0
    for i in scores_a.argsort(descending=True).tolist():
        if scores_a[i] <= cut:
            exempt += 1
            continue
        score_diff = (scores_b - scores_a[i]).abs()
        box_diff = (boxes_b - boxes_a[i]).abs().amax(-1)
        fits = (~used) & (labels_b == labels_a[i]) & \
            (score_diff <= score_tol) & (box_diff <= box_tol)
        if not fits.any():
            if unmatched < max_unmatched * len(scores_a):
                unmatched += 1
                continue
            near = score_diff.argmin().item()
            raise AssertionError(
                f'detection {i} (score {scores_a[i]:.6f}, label '
                f'{labels_a[i].item()}, box {boxes_a[i].tolist()}) has no '
                f'partner; the nearest score is {scores_b[near]:.6f} with '
                f'label {labels_b[near].item()} and box '
                f'{boxes_b[near].tolist()}')
        # Of the fitting partners, take the closest box.
        j = torch.where(fits, box_diff, torch.inf).argmin().item()
        used[j] = True
        matched += 1
        max_score = max(max_score, score_diff[j].item())
        max_box = max(max_box, box_diff[j].item())
    return dict(max_score_diff=max(max_score, sorted_diff),
                max_box_diff=max_box,
                matched=matched,
                exempt=exempt,
                unmatched=unmatched)
