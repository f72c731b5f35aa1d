# Copyright (c) OpenMMLab. All rights reserved.
"""RTDETRHead's ``box_matching='union'`` (DEIM's ``use_uni_set``): against
values of DEIM's official criterion on a hand-made case, and beside the
default matching."""
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmriformer.testing import EPS32, assert_float64_close

ROOT = Path(__file__).parents[3]
BASE_MODEL = ROOT / 'configs/_base_/models/rtdetr_riformer.py'
IMG_SHAPES = [(480, 640), (600, 400)]

# Two images, 4 queries, two decoder layers and the encoder's tokens, as
# (layer 0, last layer, encoder). The boxes put each output's matching
# where the comments say; DEIM's matcher gives the same (MATCHINGS).
GT_LABELS = [[1, 2], [0]]
GT_BOXES = [[[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.2, 0.4]],
            [[0.5, 0.5, 0.3, 0.3]]]
LOGITS = [
    [[[-1.1, 0.4, -2.3], [0.2, -0.7, 0.9], [-0.3, 1.3, -1.6],
      [-2.1, -0.9, 0.1]],
     [[-1.4, -0.2, -2.6], [0.6, -1.8, -0.8], [-2.4, -1.2, 0.3],
      [1.2, -0.6, -1.9]]],
    [[[-0.8, 1.1, -1.7], [-1.3, 0.3, -0.4], [0.5, -1.5, 1.4],
      [-2.2, -1.0, -0.5]],
     [[-1.6, 0.8, -0.1], [-0.9, -2.5, 0.7], [0.0, -0.3, -2.8],
      [1.5, -1.1, -0.6]]],
    [[[-1.9, -0.1, -0.6], [0.1, -1.4, -1.2], [-0.2, 0.9, -2.0],
      [-1.0, -0.4, 1.0]],
     [[-0.7, -2.0, 0.2], [1.1, -0.5, -1.3], [-1.5, 0.6, -0.9],
      [-0.4, -1.7, -2.2]]],
]
# Normalised (cx, cy, w, h).
BOXES = [
    # Layer 0: image 0 query 2 on gt 0, query 1 on gt 1; image 1 query 3.
    [[[0.12, 0.88, 0.06, 0.05], [0.71, 0.58, 0.22, 0.41],
      [0.28, 0.32, 0.21, 0.19], [0.88, 0.12, 0.05, 0.07]],
     [[0.15, 0.15, 0.08, 0.1], [0.85, 0.2, 0.1, 0.06],
      [0.2, 0.8, 0.07, 0.09], [0.52, 0.47, 0.28, 0.33]]],
    # Last layer: query 0 on gt 0, query 2 on gt 1; image 1 query 3.
    [[[0.31, 0.29, 0.2, 0.21], [0.1, 0.9, 0.05, 0.05],
      [0.69, 0.62, 0.19, 0.38], [0.9, 0.1, 0.05, 0.06]],
     [[0.1, 0.1, 0.06, 0.08], [0.8, 0.85, 0.09, 0.07],
      [0.9, 0.5, 0.05, 0.1], [0.49, 0.53, 0.31, 0.27]]],
    # Encoder: query 2 on gt 0, query 3 on gt 1; image 1 query 1.
    [[[0.14, 0.86, 0.07, 0.06], [0.87, 0.14, 0.06, 0.05],
      [0.33, 0.28, 0.18, 0.22], [0.68, 0.61, 0.21, 0.39]],
     [[0.12, 0.2, 0.05, 0.05], [0.47, 0.52, 0.33, 0.29],
      [0.8, 0.15, 0.08, 0.06], [0.2, 0.75, 0.1, 0.1]]],
]
# gt index per query of each output, and of the union: image 0 query 2 is
# matched to gt 0 twice and to gt 1 once; image 1 queries 3 and 1 both
# take gt 0.
MATCHINGS = [[[-1, 1, 0, -1], [-1, -1, -1, 0]],
             [[0, -1, 1, -1], [-1, -1, -1, 0]],
             [[-1, -1, 0, 1], [-1, 0, -1, -1]]]
UNION = [[0, 1, 0, 1], [-1, 0, -1, 0]]

# DEIMCriterion (Intellindust-AI-Lab/DEIM, commit
# 09d35d53d39ee3145a1e61e3a989b28b9468d1dd, engine/deim/deim_criterion.py
# with its HungarianMatcher from matcher.py), EXECUTED once on the case
# above in float64: weight_dict {loss_mal: 1, loss_bbox: 5, loss_giou: 2},
# losses ['mal', 'boxes'], gamma 1.5, num_classes 3, matcher costs class 2,
# L1 5, GIoU 2 with focal alpha 0.25 and gamma 2 (rt_deim.yml); outputs
# pred_logits/pred_boxes of the last layer, aux_outputs [layer 0],
# enc_aux_outputs [encoder], enc_meta class_agnostic False. Produced by a
# scratch script (not kept in this repository) that imports those two
# files from a git archive of engine/deim with only engine.core's register
# (identity) and engine.misc.dist_utils (world size 1) stubbed.
OFFICIAL = {
    True: {
        'loss_mal': 1.7271942561302378,
        'loss_bbox': 3.908333333333334,
        'loss_giou': 2.3930649105397035,
        'loss_mal_aux_0': 1.5918128618430885,
        'loss_bbox_aux_0': 2.916666666666667,
        'loss_giou_aux_0': 1.9514636638718539,
        'loss_mal_enc_0': 1.472031163243711,
        'loss_bbox_enc_0': 2.741666666666667,
        'loss_giou_enc_0': 1.9486343891097997,
    },
    False: {
        'loss_mal': 1.7271942561302378,
        'loss_bbox': 0.28333333333333344,
        'loss_giou': 0.4067303309172412,
        'loss_mal_aux_0': 1.5918128618430885,
        'loss_bbox_aux_0': 0.3666666666666666,
        'loss_giou_aux_0': 0.5317829756481537,
        'loss_mal_enc_0': 1.472031163243711,
        'loss_bbox_enc_0': 0.3833333333333333,
        'loss_giou_enc_0': 0.6075908135124543,
    },
}
# Our names of DEIM's: the last layer, layer 0 (aux_0), the encoder (enc_0).
NAMES = {'': '', 'd0.': '_aux_0', 'enc_': '_enc_0'}
TERMS = {'loss_cls': 'loss_mal', 'loss_bbox': 'loss_bbox',
         'loss_iou': 'loss_giou'}


def build_head(box_matching):
    """The base config's head with 3 classes, MAL as DEIM sets it and
    ``box_matching``."""
    model = Config.fromfile(BASE_MODEL).model
    head = model.bbox_head
    head.update(num_classes=3, num_pred_layer=model.decoder.num_layers + 1,
                train_cfg=model.train_cfg, test_cfg=model.test_cfg,
                loss_cls=dict(type='MatchabilityAwareLoss', gamma=1.5,
                              alpha=1.0),
                box_matching=box_matching)
    return MODELS.build(head)


def case(dtype=torch.float64):
    """The case's outputs and ground truth in pixels of non-square
    images."""
    gts = []
    for (h, w), labels, boxes in zip(IMG_SHAPES, GT_LABELS, GT_BOXES):
        boxes = torch.tensor(boxes, dtype=dtype)
        xyxy = torch.cat([boxes[:, :2] - boxes[:, 2:] / 2,
                          boxes[:, :2] + boxes[:, 2:] / 2], -1)
        gts.append(InstanceData(labels=torch.tensor(labels),
                                bboxes=xyxy * xyxy.new_tensor([w, h, w, h])))
    metas = [dict(img_shape=shape) for shape in IMG_SHAPES]
    logits = torch.tensor(LOGITS, dtype=dtype)
    boxes = torch.tensor(BOXES, dtype=dtype)
    return logits, boxes, gts, metas


def test_matchings_as_designed():
    head = build_head('union')
    logits, boxes, gts, metas = case()
    own = [head._assign(c, b, gts, metas) for c, b in zip(logits, boxes)]
    assert [x.tolist() for x in own] == MATCHINGS
    assert head._union(own, gts).tolist() == UNION


@pytest.mark.parametrize('box_matching', ['union', 'own'])
def test_losses_equal_official(box_matching):
    """Every term of every output equals DEIM's, with ``use_uni_set`` as
    ``box_matching``. mmdet divides each sum by its count plus float32's
    eps; DEIM by the count: the number of gts for the class loss, the
    number of matched queries for the box losses (3, or the union's 6).
    mmdet's GIoU also adds 1e-6 px^2 to the union and enclosing areas
    (here at least 0.04 * 640 * 480 px^2): below 1e-10 of the term, so
    1e-9."""
    head = build_head(box_matching)
    logits, boxes, gts, metas = case()
    losses = head.loss_by_feat(logits[:2], boxes[:2], logits[2], boxes[2],
                               gts, metas)
    official = OFFICIAL[box_matching == 'union']
    assert len(losses) == len(official) == 9
    num_boxes = 6 if box_matching == 'union' else 3
    for ours, suffix in NAMES.items():
        for term, theirs in TERMS.items():
            count = 3 if term == 'loss_cls' else num_boxes
            expected = official[theirs + suffix] * count / (count + EPS32)
            assert_float64_close(torch.tensor(expected, dtype=torch.float64),
                                 losses[ours + term].reshape(()),
                                 rel_tol=1e-9)


def test_union_keeps_the_denoising_and_class_losses():
    """Only the matching queries' box terms change: with denoising
    queries in front, the class terms and every denoising term equal the
    default matching's, and the box terms differ where the matchings do."""
    # float32: mmdet builds the denoising targets in it.
    logits, boxes, gts, metas = case(torch.float32)
    # Two groups of a positive and a negative query per gt (2 at most).
    dn_meta = dict(num_denoising_queries=8, num_denoising_groups=2)
    gen = torch.Generator().manual_seed(0)
    dn_logits = torch.randn(2, 2, 8, 3, generator=gen)
    dn_boxes = torch.rand(2, 2, 8, 4, generator=gen)
    dn_boxes[..., 2:] = dn_boxes[..., 2:] * 0.4 + 0.05
    all_logits = torch.cat([dn_logits, logits[:2]], 2)
    all_boxes = torch.cat([dn_boxes, boxes[:2]], 2)
    union, own = (build_head(matching).loss_by_feat(
        all_logits, all_boxes, logits[2], boxes[2], gts, metas, dn_meta)
        for matching in ('union', 'own'))
    assert union.keys() == own.keys()
    assert sum('dn_' in name for name in union) == 6
    for name in union:
        if 'dn_' in name or name.endswith('loss_cls'):
            # The same targets through the same arithmetic.
            assert torch.equal(own[name], union[name]), name
        else:
            assert not torch.allclose(own[name], union[name])


def test_bad_box_matching():
    with pytest.raises(ValueError, match="'own' or 'union'"):
        build_head('all')
    with pytest.raises(ValueError, match="box_matching='union'"):
        MODELS.build(dict(type='DFineHead', num_classes=3, embed_dims=8,
                          num_pred_layer=2, as_two_stage=True,
                          box_matching='own'))
