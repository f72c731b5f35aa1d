# Copyright (c) OpenMMLab. All rights reserved.
import pytest
import torch

from mmriformer.deployment import compare_detections


def detections(scores, labels, boxes):
    return dict(scores=torch.tensor(scores), labels=torch.tensor(labels),
                bboxes=torch.tensor(boxes, dtype=torch.float32))


def test_unmatched_fraction():
    """A detection of another box counts against ``max_unmatched``
    instead of failing the comparison."""
    boxes = [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50],
             [5, 5, 8, 8]]
    reference = detections([0.9, 0.8, 0.7, 0.1], [0, 1, 2, 0], boxes)
    ours = detections([0.9, 0.8, 0.7, 0.1], [0, 1, 2, 0],
                      boxes[:2] + [[60, 60, 70, 70]] + boxes[3:])
    with pytest.raises(AssertionError, match='detection 2 .* no partner'):
        compare_detections(ours, reference, (100, 100))
    stats = compare_detections(ours, reference, (100, 100),
                               max_unmatched=0.25)
    assert (stats['matched'], stats['unmatched'], stats['exempt']) == (2, 1,
                                                                       1)
    assert compare_detections(reference, reference,
                              (100, 100))['unmatched'] == 0
