# Copyright (c) OpenMMLab. All rights reserved.
"""RTDETRHead's post-processing: one selection for ``predict`` and the
export, equal to mmdet's DETR post-processing; its box branches' activation
(DEIM's SiLU)."""
import pytest
import torch
from mmdet.models.dense_heads import DETRHead
from mmdet.registry import MODELS
from torch import nn

from mmriformer.models.utils import topk_detections

NUM_CLASSES = 3


def head(reg_act_cfg=dict(type='ReLU'), **test_cfg):
    return MODELS.build(
        dict(type='RTDETRHead', num_classes=NUM_CLASSES, embed_dims=8,
             num_pred_layer=2, as_two_stage=True,
             loss_cls=dict(type='RTDETRVarifocalLoss', use_sigmoid=True),
             reg_act_cfg=reg_act_cfg, test_cfg=test_cfg))


def outputs(batch=2, queries=10):
    """Decoder outputs with distinct logits (no ties in the top-k) and
    boxes reaching past the image, so clamping matters."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randperm(2 * batch * queries * NUM_CLASSES, generator=gen)
    logits = logits.reshape(2, batch, queries, NUM_CLASSES) / 10 - 3
    boxes = torch.rand(2, batch, queries, 4, generator=gen) * 1.4 - 0.2
    return logits.float(), boxes


def test_topk_detections_by_hand():
    # Query 1 is kept for two classes, query 0 for none; the kept boxes
    # reach past the right and the top edges.
    logits = torch.tensor([[[-5., 0.], [2., 1.], [-1., .5]]])
    boxes = torch.tensor([[[.5, .5, .2, .2], [.9, .5, .4, .2],
                           [.1, .1, .2, .4]]])
    labels, xyxy, scores = topk_detections(logits, boxes, 3)
    assert labels.tolist() == [[0, 1, 1]]
    torch.testing.assert_close(scores, torch.tensor([[2., 1., .5]]).sigmoid())
    expected = torch.tensor([[[.7, .4, 1., .6], [.7, .4, 1., .6],
                              [0., 0., .2, .3]]])
    torch.testing.assert_close(xyxy, expected)


@pytest.mark.parametrize('rescale', [True, False])
@pytest.mark.parametrize('max_per_img', [None, 7])
def test_predict_by_feat_equals_mmdet(rescale, max_per_img):
    """The same detections, bit for bit, as mmdet's DETR head computes
    them image by image (executed, with the same test_cfg)."""
    test_cfg = {} if max_per_img is None else dict(max_per_img=max_per_img)
    ours = head(**test_cfg)
    logits, boxes = outputs()
    metas = [dict(img_shape=(48, 64), scale_factor=(0.5, 0.25)),
             dict(img_shape=(64, 32), scale_factor=(2.0, 1.0))]
    results = ours.predict_by_feat(logits, boxes, metas, rescale)
    for i, (result, meta) in enumerate(zip(results, metas)):
        expected = DETRHead._predict_by_feat_single(
            ours, logits[-1, i], boxes[-1, i], meta, rescale)
        assert len(result) == (max_per_img or boxes.shape[2])
        for key in ('labels', 'scores', 'bboxes'):
            assert torch.equal(result.get(key), expected.get(key)), key


def test_box_branches_take_the_activation():
    """mmdet's box branches (Linear, ReLU, Linear, ReLU, Linear) by
    default; DEIM's SiLU in place of the ReLUs, with the same keys."""
    relu, silu = head(), head(reg_act_cfg=dict(type='SiLU'))
    for branches, act in ((relu.reg_branches, nn.ReLU),
                          (silu.reg_branches, nn.SiLU)):
        for branch in branches:
            assert [type(m) for m in branch[1::2]] == [act, act]
            assert all(isinstance(m, nn.Linear) for m in branch[::2])
    assert relu.state_dict().keys() == silu.state_dict().keys()
