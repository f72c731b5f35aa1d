# Copyright (c) OpenMMLab. All rights reserved.
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.layers import MLP
from mmdet.registry import MODELS
from torch import nn

from mmriformer.models.layers import RTDETRDecoder
from mmriformer.testing import forbid_host_sync, random_queries

NUM_LAYERS = 4
EMBED_DIMS = 32
NUM_CLASSES = 5
SHAPES = [(4, 6), (3, 2)]
LAYER_CFG = dict(
    embed_dims=EMBED_DIMS,
    num_heads=4,
    feedforward_channels=64,
    num_levels=len(SHAPES),
    num_points=2)


def build_decoder(eval_idx=-1, seed=0, layer_cfg=LAYER_CFG, **kwargs):
    torch.manual_seed(seed)
    decoder = MODELS.build(
        dict(
            type='RTDETRDecoder',
            num_layers=NUM_LAYERS,
            layer_cfg=layer_cfg,
            eval_idx=eval_idx,
            **kwargs))
    assert isinstance(decoder, RTDETRDecoder)
    return decoder


def build_branches(seed=1):
    torch.manual_seed(seed)
    reg_branches = nn.ModuleList(
        MLP(EMBED_DIMS, EMBED_DIMS, 4, 3) for _ in range(NUM_LAYERS))
    cls_branches = nn.ModuleList(
        nn.Linear(EMBED_DIMS, NUM_CLASSES) for _ in range(NUM_LAYERS))
    return reg_branches, cls_branches


def make_inputs(num_batch=2, num_query=7, seed=2):
    return random_queries(SHAPES, num_batch, num_query, EMBED_DIMS, seed)


def run(decoder, branches, query, boxes, value, **kwargs):
    reg_branches, cls_branches = branches
    return decoder(query, boxes, value, SHAPES, reg_branches=reg_branches,
                   cls_branches=cls_branches, **kwargs)


@pytest.mark.parametrize('training', [True, False])
def test_output_shapes(training):
    decoder = build_decoder().train(training)
    query, boxes, value = make_inputs()
    logits, out_boxes = run(decoder, build_branches(), query, boxes, value)
    assert logits.shape == (NUM_LAYERS, 2, 7, NUM_CLASSES)
    assert out_boxes.shape == (NUM_LAYERS, 2, 7, 4)
    assert ((out_boxes > 0) & (out_boxes < 1)).all()
    # Every layer refines the boxes.
    assert not torch.allclose(out_boxes[0], boxes)
    assert not torch.allclose(out_boxes[1], out_boxes[0])


def test_query_pos_head_and_init():
    decoder = build_decoder()
    sizes = [(m.in_features, m.out_features)
             for m in decoder.query_pos_head.layers]
    assert sizes == [(4, 2 * EMBED_DIMS), (2 * EMBED_DIMS, EMBED_DIMS)]
    # mmdet's MLP keeps the checkpoint keys of the MLP it replaced.
    assert [k for k in decoder.state_dict() if 'query_pos_head' in k] == [
        f'query_pos_head.layers.{i}.{p}' for i in (0, 1)
        for p in ('weight', 'bias')
    ]
    # A detector's blanket Xavier breaks the deformable attention's init;
    # init_weights() restores it.
    for p in decoder.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    decoder.init_weights()
    for layer in decoder.layers:
        assert (layer.cross_attn.sampling_offsets.weight == 0).all()
        assert (layer.cross_attn.attention_weights.weight == 0).all()


def test_deim_query_pos_head():
    """DEIM's ``query_pos_method: as_reg`` with ``mlp_act: silu``: 3 layers
    of embed_dims with SiLU between them; Xavier on the first two only, as
    the official ``_reset_parameters``."""
    decoder = build_decoder(query_pos_method='as_reg',
                            query_pos_act_cfg=dict(type='SiLU'))
    head = decoder.query_pos_head
    assert [(m.in_features, m.out_features) for m in head.layers] == [
        (4, EMBED_DIMS), (EMBED_DIMS, EMBED_DIMS), (EMBED_DIMS, EMBED_DIMS)]
    boxes = torch.rand(2, 7, 4)
    first, second, third = head.layers
    torch.testing.assert_close(
        head(boxes), third(F.silu(second(F.silu(first(boxes))))))
    # PyTorch's default draws the third within 1 / sqrt(fan_in), which
    # Xavier's bound sqrt(6 / (fan_in + fan_out)) exceeds at these sizes.
    default_bound = 1 / math.sqrt(EMBED_DIMS)
    assert third.weight.abs().max() <= default_bound
    assert second.weight.abs().max() > default_bound


def test_unknown_query_pos_method():
    with pytest.raises(ValueError, match="'as_reg', 'default'"):
        build_decoder(query_pos_method='sine')


@pytest.mark.parametrize('act_cfg,act', [({}, F.relu),
                                         (dict(type='SiLU'), F.silu)])
def test_layer_is_post_norm_with_pos_on_queries_and_keys(act_cfg, act):
    """With RT-DETR's ReLU (the default) or DEIM's SiLU in the FFN."""
    layer_cfg = dict(LAYER_CFG, act_cfg=act_cfg) if act_cfg else LAYER_CFG
    layer = build_decoder(layer_cfg=layer_cfg).layers[0].eval()
    query, boxes, value = make_inputs()
    pos = torch.randn_like(query)
    with torch.no_grad():
        # Make the cross-attention depend on its query (not so at init).
        for p in layer.cross_attn.parameters():
            p.normal_(std=.3)
        for norm in (layer.norm1, layer.norm2, layer.norm3):
            norm.weight.uniform_(.5, 1.5)
            norm.bias.normal_()
        got = layer(query, pos, boxes, value, SHAPES)
        x = query
        x = layer.norm1(x + layer.self_attn(x + pos, x + pos, x)[0])
        x = layer.norm2(x + layer.cross_attn(x + pos, boxes, value, SHAPES))
        x = layer.norm3(x + layer.linear2(act(layer.linear1(x))))
    torch.testing.assert_close(got, x)


def test_silu_ffn_differs_from_relu():
    """The same weights (activations have none), other outputs."""
    query, boxes, value = make_inputs()
    relu, silu = (build_decoder(layer_cfg=dict(LAYER_CFG, act_cfg=dict(
        type=act))).eval() for act in ('ReLU', 'SiLU'))
    assert all(
        torch.equal(a, b) for a, b in zip(relu.state_dict().values(),
                                          silu.state_dict().values()))
    with torch.no_grad():
        outputs = [
            run(decoder, build_branches(), query, boxes, value)[1]
            for decoder in (relu, silu)
        ]
    assert not torch.allclose(*outputs)


def test_layers_refine_the_previous_boxes():
    """Layer i gets query_pos_head(box) and the box of layer i - 1."""
    decoder = build_decoder().eval()
    layer_inputs = []
    for layer in decoder.layers:
        layer.register_forward_pre_hook(
            lambda _, args: layer_inputs.append(args[1:3]))
    query, boxes, value = make_inputs()
    with torch.no_grad():
        _, out_boxes = run(decoder, build_branches(), query, boxes, value)
        refs = torch.cat([boxes[None], out_boxes[:-1]])
        for (pos, ref), expected in zip(layer_inputs, refs, strict=True):
            torch.testing.assert_close(ref, expected)
            torch.testing.assert_close(pos, decoder.query_pos_head(expected))


def count_layer_calls(decoder):
    calls = [0] * decoder.num_layers
    for i, layer in enumerate(decoder.layers):
        layer.register_forward_hook(
            lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
    return calls


@pytest.mark.parametrize('eval_idx,num_run', [(0, 1), (2, 3), (-3, 2),
                                              (-1, NUM_LAYERS)])
def test_eval_idx_runs_first_layers(eval_idx, num_run):
    full = build_decoder().eval()
    short = build_decoder(eval_idx=eval_idx, seed=3).eval()
    short.load_state_dict(full.state_dict())
    calls = count_layer_calls(short)
    branches = build_branches()
    inputs = make_inputs()
    with torch.no_grad():
        full_logits, full_boxes = run(full, branches, *inputs)
        logits, boxes = run(short, branches, *inputs)
    assert calls == [1] * num_run + [0] * (NUM_LAYERS - num_run)
    assert logits.shape[0] == boxes.shape[0] == num_run
    # The last output is layer eval_idx of the full run.
    torch.testing.assert_close(logits, full_logits[:num_run])
    torch.testing.assert_close(boxes, full_boxes[:num_run])

    # Training ignores eval_idx.
    short.train()
    logits, boxes = run(short, branches, *inputs)
    assert logits.shape[0] == boxes.shape[0] == NUM_LAYERS


def test_eval_idx_on_built_model():
    decoder = build_decoder().eval()
    decoder.eval_idx = -2
    assert decoder.eval_idx == NUM_LAYERS - 2
    logits, _ = run(decoder, build_branches(), *make_inputs())
    assert logits.shape[0] == NUM_LAYERS - 1
    for bad in (NUM_LAYERS, -NUM_LAYERS - 1):
        with pytest.raises(ValueError):
            decoder.eval_idx = bad


def test_too_few_branches():
    reg_branches, cls_branches = build_branches()
    with pytest.raises(ValueError, match='4 layers need as many reg and cls '
                       'branches, got 4 and 3'):
        run(build_decoder(), (reg_branches, cls_branches[:-1]),
            *make_inputs())


@pytest.mark.parametrize('per_head', [False, True])
def test_attn_mask_blocks_attention(per_head):
    decoder = build_decoder().eval()
    branches = build_branches()
    query, boxes, value = make_inputs()
    num_query = query.shape[1]
    # The last query is hidden from all others (True = blocked).
    mask = torch.zeros(num_query, num_query, dtype=torch.bool)
    mask[:-1, -1] = True
    if per_head:
        mask = mask.expand(2 * LAYER_CFG['num_heads'], -1, -1)
    changed_query, changed_boxes = query.clone(), boxes.clone()
    changed_query[:, -1] += 1
    changed_boxes[:, -1, :2] = 1 - changed_boxes[:, -1, :2]

    with torch.no_grad():
        logits, out_boxes = run(
            decoder, branches, query, boxes, value, attn_mask=mask)
        logits2, out_boxes2 = run(
            decoder,
            branches,
            changed_query,
            changed_boxes,
            value,
            attn_mask=mask)
        logits3, _ = run(decoder, branches, changed_query, changed_boxes,
                         value)
    torch.testing.assert_close(logits2[:, :, :-1], logits[:, :, :-1])
    torch.testing.assert_close(out_boxes2[:, :, :-1], out_boxes[:, :, :-1])
    assert not torch.allclose(logits2[:, :, -1], logits[:, :, -1])
    # Without the mask the change reaches the other queries.
    assert not torch.allclose(logits3[:, :, :-1], logits[:, :, :-1])


def test_look_forward_twice_gradients():
    """Layer i's box trains reg branches i and i - 1; references are
    detached."""
    decoder = build_decoder().train()
    reg_branches, cls_branches = build_branches()
    logits, boxes = run(decoder, (reg_branches, cls_branches),
                        *make_inputs())

    def grad_norms(branches):
        return [
            sum(p.grad.abs().sum().item() for p in h.parameters()
                if p.grad is not None) for h in branches
        ]

    boxes[2].sum().backward(retain_graph=True)
    has_grad = [g > 0 for g in grad_norms(reg_branches)]
    assert has_grad == [False, True, True, False]
    reg_branches.zero_grad(set_to_none=True)
    logits[2].sum().backward()
    assert grad_norms(reg_branches) == [0] * NUM_LAYERS


def test_inference_has_no_host_syncs():
    decoder = build_decoder().eval()
    branches = build_branches()
    inputs = make_inputs()
    with torch.no_grad(), forbid_host_sync():
        run(decoder, branches, *inputs)
