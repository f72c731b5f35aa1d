# Copyright (c) OpenMMLab. All rights reserved.
"""DFineHead and the DFINE detector on a tiny D-FINE (RIFormer backbone,
our HybridEncoder, DFineDecoder): branch shapes, predictions, every loss
term of every layer, GO-LSD without ground truth, the union of matchings,
the denoising DDF's balance, bad settings, a loss that falls when training
on one image, and the ONNX export."""
import onnxruntime
import pytest
import torch
from mmdet.registry import MODELS

from mmriformer.deployment.onnx_export import DeployedDetector, export_onnx
from mmriformer.models.dense_heads import DFineHead
from mmriformer.testing import make_det_samples

NUM_LAYERS, REG_MAX, EMBED_DIMS, NUM_CLASSES, NUM_QUERIES = 3, 16, 32, 4, 30
SIZE = 64
BOXES = [[8, 10, 40, 50], [30, 4, 60, 30]]


def tiny_dfine(dn=True, head_reg_max=REG_MAX, **head):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(type='DFINE',
             num_queries=NUM_QUERIES,
             data_preprocessor=dict(type='DetDataPreprocessor',
                                    mean=[123.675, 116.28, 103.53],
                                    std=[58.395, 57.12, 57.375],
                                    bgr_to_rgb=True),
             backbone=dict(type='RIFormer',
                           arch=dict(layers=[1, 1, 1, 1],
                                     embed_dims=[8, 16, 24, 32]),
                           out_indices=(2, 4, 6)),
             neck=dict(type='HybridEncoder',
                       in_channels=[16, 24, 32],
                       embed_dims=EMBED_DIMS,
                       num_heads=2,
                       feedforward_channels=64),
             decoder=dict(num_layers=NUM_LAYERS,
                          reg_max=REG_MAX,
                          layer_cfg=dict(embed_dims=EMBED_DIMS,
                                         num_heads=2,
                                         feedforward_channels=64,
                                         num_points=[2, 2, 2])),
             bbox_head=dict(type='DFineHead',
                            num_classes=NUM_CLASSES,
                            embed_dims=EMBED_DIMS,
                            as_two_stage=True,
                            reg_max=head_reg_max,
                            loss_cls=dict(type='RTDETRVarifocalLoss',
                                          use_sigmoid=True,
                                          alpha=0.75,
                                          gamma=2.0,
                                          loss_weight=1.0),
                            loss_bbox=dict(type='L1Loss', loss_weight=5.0),
                            loss_iou=dict(type='GIoULoss', loss_weight=2.0),
                            **head),
             dn_cfg=dict(label_noise_scale=0.5,
                         box_noise_scale=1.0,
                         group_cfg=dict(dynamic=True,
                                        num_groups=None,
                                        num_dn_queries=12)) if dn else None,
             train_cfg=dict(assigner=dict(
                 type='HungarianAssigner',
                 match_costs=[
                     dict(type='FocalLossCost', weight=2.0),
                     dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                     dict(type='IoUCost', iou_mode='giou', weight=2.0)
                 ])),
             test_cfg=dict(max_per_img=10)))
    model.init_weights()
    return model


def with_distinct_layers(model):
    """D-FINE starts every layer's edge logits at 0, so DDF is 0 until the
    layers differ: give the box branches' last layers random weights."""
    torch.manual_seed(2)
    for branch in model.bbox_head.reg_branches[:-1]:
        torch.nn.init.normal_(branch[-1].weight, std=0.05)
    return model


def expected_keys(dn=True):
    """Every term of every layer: VFL, L1 and GIoU everywhere, FGL on the
    decoder layers, DDF on all but the last."""
    keys = set()
    for kind in ('', 'dn_') if dn else ('', ):
        for layer in [f'd{i}.' for i in range(NUM_LAYERS - 1)]:
            keys |= {
                f'{layer}{kind}loss_{t}'
                for t in ('cls', 'bbox', 'iou', 'fgl', 'ddf')
            }
        keys |= {f'{kind}loss_{t}' for t in ('cls', 'bbox', 'iou', 'fgl')}
        keys |= {f'pre.{kind}loss_{t}' for t in ('cls', 'bbox', 'iou')}
    return keys | {f'enc_loss_{t}' for t in ('cls', 'bbox', 'iou')}


def test_branches():
    head = tiny_dfine().bbox_head
    assert len(head.reg_branches) == len(head.cls_branches) == NUM_LAYERS + 1
    for branch in head.reg_branches[:-1]:
        assert branch[-1].out_features == 4 * (REG_MAX + 1)
    # The encoder's box branch stays a box delta, as D-FINE's enc_bbox_head.
    assert head.reg_branches[-1][-1].out_features == 4
    for branch in head.reg_branches:
        assert not branch[-1].weight.any() and not branch[-1].bias.any()


def test_predict_shapes():
    model = tiny_dfine().eval()
    samples = make_det_samples([(SIZE, SIZE)] * 2, [BOXES, []])
    with torch.no_grad():
        results = model.predict(torch.rand(2, 3, SIZE, SIZE), samples)
    for result in results:
        pred = result.pred_instances
        assert pred.bboxes.shape == (10, 4)
        assert pred.scores.shape == pred.labels.shape == (10, )
        assert ((pred.scores >= 0) & (pred.scores <= 1)).all()


@pytest.mark.parametrize('dn', [True, False])
def test_loss_terms_per_layer(dn):
    model = with_distinct_layers(tiny_dfine(dn=dn)).train()
    samples = make_det_samples([(SIZE, SIZE)] * 2, [BOXES, BOXES[:1]])
    losses = model.loss(torch.rand(2, 3, SIZE, SIZE), samples)
    assert set(losses) == expected_keys(dn)
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    for module in (model.backbone, model.decoder.pre_bbox_head,
                   model.decoder.lqe_layers, model.bbox_head.reg_branches):
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in module.parameters())


def test_denoising_ddf_balanced_by_matching_counts(monkeypatch):
    """As D-FINE: the denoising layers' DDF weighs its two means by the
    matching queries' counts of matched and unmatched edges."""
    model = with_distinct_layers(tiny_dfine()).train()
    calls = []
    ddf = model.bbox_head.loss_ddf
    forward = ddf.forward

    def recording(pred, target, weight, matched, counts=None):
        calls.append((matched, counts))
        return forward(pred, target, weight, matched, counts)

    monkeypatch.setattr(ddf, 'forward', recording)
    model.loss(torch.rand(2, 3, SIZE, SIZE),
               make_det_samples([(SIZE, SIZE)] * 2, [BOXES, BOXES[:1]]))
    matching, denoising = calls[:NUM_LAYERS - 1], calls[NUM_LAYERS - 1:]
    assert len(denoising) == NUM_LAYERS - 1
    matched = matching[0][0]
    assert len(matched) == 4 * 2 * NUM_QUERIES and matched.sum() >= 4 * 3
    assert all(counts is None for _, counts in matching)
    expected = [int(matched.sum()), int((~matched).sum())]
    for dn_matched, counts in denoising:
        assert len(dn_matched) != len(matched)
        assert [int(c) for c in counts] == expected


def test_without_ground_truth():
    """FGL is 0 without gt boxes (nothing is matched); DDF still distils
    every query, weighted by the teacher's scores; no box losses."""
    model = with_distinct_layers(tiny_dfine()).train()
    losses = model.loss(torch.rand(2, 3, SIZE, SIZE),
                        make_det_samples([(SIZE, SIZE)] * 2, [[], []]))
    assert set(losses) == expected_keys()
    assert all(torch.isfinite(v) for v in losses.values())
    for key, value in losses.items():
        if 'fgl' in key or 'bbox' in key or 'iou' in key or 'dn_' in key:
            assert value == 0, key
    assert all(losses[f'd{i}.loss_ddf'] > 0 for i in range(NUM_LAYERS - 1))
    sum(losses.values()).backward()


def test_union_of_matchings():
    """Each query keeps the gt it is matched to most often, the lower one
    on a tie; a query never matched stays unmatched."""
    gts = make_det_samples([(SIZE, SIZE)], [BOXES * 2])
    gts = [s.gt_instances for s in gts]
    assignments = [
        torch.tensor([[0, -1, 2, -1, 3]]),
        torch.tensor([[1, -1, 2, -1, 2]]),
        torch.tensor([[1, -1, 3, 0, -1]])
    ]
    union = DFineHead._union(assignments, gts)
    assert union.tolist() == [[1, -1, 2, 0, 2]]
    empty = [s.gt_instances for s in make_det_samples([(SIZE, SIZE)], [[]])]
    assert DFineHead._union([torch.full((1, 5), -1)] * 2,
                            empty).tolist() == [[-1] * 5]


def test_bad_settings():
    with pytest.raises(ValueError, match='decoder.reg_max=16'):
        tiny_dfine(head_reg_max=8)
    with pytest.raises(ValueError, match='as_two_stage=True'):
        MODELS.build(
            dict(type='DFineHead',
                 num_classes=NUM_CLASSES,
                 embed_dims=EMBED_DIMS,
                 num_pred_layer=2,
                 as_two_stage=False,
                 loss_cls=dict(type='RTDETRVarifocalLoss', use_sigmoid=True)))


def test_loss_falls_on_one_image():
    """Thirty AdamW steps on one fixed image: the total loss and the last
    layer's L1 loss fall clearly. (FGL and VFL may rise at first: both
    grow with the IoU of the matched boxes, their weight or target.)"""
    model = tiny_dfine(dn=False).train()
    torch.manual_seed(1)
    image = torch.rand(1, 3, SIZE, SIZE)
    samples = make_det_samples([(SIZE, SIZE)], [BOXES])
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    totals, l1 = [], []
    for _ in range(30):
        losses = model.loss(image, samples)
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        totals.append(loss.item())
        l1.append(losses['loss_bbox'].item())
    assert sum(totals[-5:]) / 5 < 0.6 * totals[0], totals
    assert sum(l1[-5:]) / 5 < 0.5 * l1[0], l1


def test_onnx_export_equals_pytorch(tmp_path):
    """The deploy export (DeployedDetector, the RT-DETR path) runs a
    D-FINE with distinct layers in onnxruntime as in PyTorch."""
    detector = with_distinct_layers(tiny_dfine()).eval()
    deployed = DeployedDetector(detector).eval()
    path = export_onnx(deployed, str(tmp_path / 'dfine.onnx'), (SIZE, SIZE),
                       dict(classes=tuple('abcd')))
    image = torch.rand(1, 3, SIZE, SIZE)
    sizes = torch.tensor([[2 * SIZE, SIZE]])
    with torch.no_grad():
        labels, boxes, scores = deployed(image, sizes)
    session = onnxruntime.InferenceSession(path)
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, {names[0]: image.numpy(), names[1]: sizes.numpy()})
    assert (torch.from_numpy(got[0]) == labels).all()
    torch.testing.assert_close(torch.from_numpy(got[1]), boxes, rtol=0,
                               atol=1e-3)
    torch.testing.assert_close(torch.from_numpy(got[2]), scores, rtol=0,
                               atol=1e-5)
