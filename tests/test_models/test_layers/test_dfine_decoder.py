# Copyright (c) OpenMMLab. All rights reserved.
"""DFineDecoder's shapes, eval_idx, initial state and errors, and its
pieces (GatedResidual, LocationQualityEstimator, the HF key map); its
equality with HF's D-FINE decoder is in test_dfine_decoder_hf.py."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import nn

from mmriformer.converters.dfine import hf_dfine_decoder_to_ours
from mmriformer.converters.rtdetr import UnknownLayoutError
from mmriformer.models.layers import (MLP, DFineDecoder, GatedResidual,
                                      LocationQualityEstimator,
                                      RTDETRDecoderLayer)
from mmriformer.testing import random_queries

NUM_LAYERS, EMBED_DIMS, NUM_CLASSES, REG_MAX = 3, 32, 5, 16
SHAPES = [(4, 6), (3, 2)]
LAYER_CFG = dict(embed_dims=EMBED_DIMS, num_heads=4, feedforward_channels=64,
                 num_levels=len(SHAPES), num_points=[2, 3])


def build(eval_idx=-1, reg_max=REG_MAX):
    torch.manual_seed(0)
    decoder = MODELS.build(
        dict(type='DFineDecoder', num_layers=NUM_LAYERS, layer_cfg=LAYER_CFG,
             eval_idx=eval_idx, reg_max=reg_max))
    reg_branches = nn.ModuleList(
        MLP(EMBED_DIMS, EMBED_DIMS, 4 * (reg_max + 1), 3)
        for _ in range(NUM_LAYERS))
    cls_branches = nn.ModuleList(
        nn.Linear(EMBED_DIMS, NUM_CLASSES) for _ in range(NUM_LAYERS))
    return decoder, reg_branches, cls_branches


def run(decoder, reg_branches, cls_branches, num_query=7):
    query, boxes, memory = random_queries(SHAPES, 2, num_query, EMBED_DIMS, 1)
    with torch.no_grad():
        return decoder(query, boxes, memory, SHAPES, reg_branches,
                       cls_branches), boxes


@pytest.mark.parametrize('training', [True, False])
def test_output_shapes(training):
    decoder, reg, cls = build()
    out, _ = run(decoder.train(training), reg, cls)
    assert isinstance(decoder, DFineDecoder)
    assert out.logits.shape == (NUM_LAYERS, 2, 7, NUM_CLASSES)
    assert out.boxes.shape == (NUM_LAYERS, 2, 7, 4)
    assert out.corners.shape == (NUM_LAYERS, 2, 7, 4 * (REG_MAX + 1))
    assert out.initial_boxes.shape == out.pre_boxes.shape == (2, 7, 4)
    assert out.pre_logits.shape == (2, 7, NUM_CLASSES)
    assert (out.boxes[..., 2:] > 0).all()


@pytest.mark.parametrize('eval_idx', [0, 1, -2])
def test_eval_idx_runs_the_first_layers(eval_idx):
    """In eval mode only layers 0 .. eval_idx run, and they give what they
    give in training (no dropout here)."""
    decoder, reg, cls = build(eval_idx)
    full, _ = run(decoder.train(), reg, cls)
    short, _ = run(decoder.eval(), reg, cls)
    num_run = eval_idx % NUM_LAYERS + 1
    assert short.logits.shape[0] == num_run
    for name in ('logits', 'boxes', 'corners'):
        assert torch.equal(getattr(short, name),
                           getattr(full, name)[:num_run])
    assert torch.equal(short.initial_boxes, full.initial_boxes)
    with pytest.raises(ValueError, match='eval_idx'):
        build(eval_idx=NUM_LAYERS)


@pytest.mark.parametrize('reg_max', [0, 7, 2])
def test_bad_reg_max(reg_max):
    with pytest.raises(ValueError, match='reg_max must be even and at least'):
        build(reg_max=reg_max)


def test_branches_must_match_reg_max():
    decoder, _, cls = build()
    _, reg, _ = build(reg_max=REG_MAX + 2)
    with pytest.raises(ValueError, match=r'4 \* \(reg_max \+ 1\)'):
        run(decoder, reg, cls)


def test_initial_state():
    """As D-FINE starts: the pre-bbox head keeps the input boxes, the LQE
    corrects nothing, the gates are 0.5, and with zero edge logits (flat
    distributions) every box is the pre-bbox head's."""
    decoder, reg, cls = build()
    for branch in reg:
        nn.init.zeros_(branch.layers[-1].weight)
        nn.init.zeros_(branch.layers[-1].bias)
    out, boxes = run(decoder.train(), reg, cls)
    assert torch.allclose(out.pre_boxes, boxes, atol=1e-6)
    assert torch.equal(out.initial_boxes, out.pre_boxes)
    assert torch.allclose(out.boxes, out.pre_boxes.expand_as(out.boxes),
                          atol=1e-6)
    assert (out.corners == 0).all()


def test_rtdetr_layer_is_unchanged_by_default():
    """D-FINE's options leave RT-DETR's layer and its keys as they were."""
    keys = set(RTDETRDecoderLayer(**LAYER_CFG).state_dict())
    assert {'norm2.weight', 'cross_attn.value_proj.weight',
            'cross_attn.output_proj.weight'} <= keys
    assert not any(k.startswith('gateway.') for k in keys)
    dfine = set(RTDETRDecoderLayer(**LAYER_CFG, cross_attn_residual='gate',
                                   cross_attn_projections=False).state_dict())
    assert dfine - keys == {f'gateway.{m}.{p}' for m in ('gate', 'norm')
                            for p in ('weight', 'bias')}
    assert keys - dfine == {
        'norm2.weight', 'norm2.bias', 'cross_attn.value_proj.weight',
        'cross_attn.value_proj.bias', 'cross_attn.output_proj.weight',
        'cross_attn.output_proj.bias'}
    with pytest.raises(ValueError, match='cross_attn_residual'):
        RTDETRDecoderLayer(**LAYER_CFG, cross_attn_residual='sum')


def test_gated_residual():
    gated = GatedResidual(8)
    a, b = torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    assert torch.allclose(gated(a, b), F.layer_norm((a + b) / 2, (8, )),
                          atol=1e-6)
    nn.init.normal_(gated.gate.weight)
    gates = torch.cat([a, b], -1) @ gated.gate.weight.T + gated.gate.bias
    g1, g2 = gates.sigmoid().chunk(2, -1)
    assert torch.allclose(gated(a, b), F.layer_norm(g1 * a + g2 * b, (8, )),
                          atol=1e-5)


def test_location_quality_estimator():
    lqe = LocationQualityEstimator(reg_max=8, top_k=3)
    scores, corners = torch.randn(2, 5, 4), torch.randn(2, 5, 36)
    assert torch.equal(lqe(scores, corners), scores)
    nn.init.normal_(lqe.reg_conf.layers[-1].weight)
    top = corners.view(2, 5, 4, 9).softmax(-1).sort(-1, True)[0][..., :3]
    stats = torch.cat([top, top.mean(-1, keepdim=True)], -1).view(2, 5, 16)
    assert torch.allclose(lqe(scores, corners),
                          scores + lqe.reg_conf(stats), atol=1e-6)
    with pytest.raises(ValueError, match='top_k'):
        LocationQualityEstimator(reg_max=2, top_k=4)


def test_deim_activations():
    """DEIM's D-FINE (mlp_act and activation silu): SiLU in the pre-bbox
    head and the LQEs; ReLU by default, as D-FINE."""
    default = build()[0]
    assert type(default.pre_bbox_head.activate) is nn.ReLU
    assert type(default.lqe_layers[0].reg_conf.activate) is nn.ReLU
    silu = dict(type='SiLU')
    decoder = MODELS.build(
        dict(type='DFineDecoder', num_layers=NUM_LAYERS, layer_cfg=LAYER_CFG,
             reg_max=REG_MAX, pre_bbox_act_cfg=silu,
             lqe_cfg=dict(act_cfg=silu)))
    assert type(decoder.pre_bbox_head.activate) is nn.SiLU
    assert all(type(lqe.reg_conf.activate) is nn.SiLU
               for lqe in decoder.lqe_layers)
    # The keys stay D-FINE's.
    assert decoder.state_dict().keys() == default.state_dict().keys()


def test_hf_key_map_errors():
    scale = torch.tensor([1 / 2] * 2 + [1 / 3] * 3)
    state = {'layers.0.encoder_attn.num_points_scale': scale,
             'up': torch.ones(1)}
    assert list(hf_dfine_decoder_to_ours(state)) == ['up']
    state['layers.0.encoder_attn.num_points_scale'] = scale[:4]
    with pytest.raises(ValueError, match='1 / n'):
        hf_dfine_decoder_to_ours(state)
    with pytest.raises(UnknownLayoutError, match='class_embed'):
        hf_dfine_decoder_to_ours({'class_embed.0.weight': torch.ones(1)})
