# Copyright (c) OpenMMLab. All rights reserved.
"""The initial parameters of RT-DETR, module by module, as the official
code (lyuwenyu/RT-DETR ``rtdetr_pytorch``) draws them.

Official formulas: every ``nn.Conv2d`` and ``nn.Linear`` not named below
keeps PyTorch's default, Kaiming-uniform with ``a = sqrt(5)``, i.e.
``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for weights and biases; norms start
at 1 and 0; ``nn.MultiheadAttention`` draws ``in_proj_weight`` Xavier-
uniform with zero biases. ``RTDETRTransformer._reset_parameters``: class
biases ``-log((1 - 0.01) / 0.01)``, last box layers zero, Xavier-uniform
``enc_output[0].weight`` and ``query_pos_head``; separate heads per layer.
The denoising label table is ``nn.Embedding``: N(0, 1).

Distributions are checked by their support (a uniform draw never leaves
its bound; a normal one of the same scale does) and by their standard
deviation, within 6 standard errors of its estimate: for n uniform values
the relative standard error of the sample std is ``sqrt(0.8 / n) / 2``, for
normal ones ``sqrt(2 / n) / 2``.
"""
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from mmriformer.apis import build_model

ROOT = Path(__file__).parents[2]
PRIOR = -math.log((1 - 0.01) / 0.01)


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    # The pretrained backbone is not the subject.
    detector = build_model(ROOT / 'configs/rtdetr_r18vd.py',
                           pretrained=False)
    detector.init_weights()
    return detector


def assert_uniform(tensor: torch.Tensor, bound: float, name: str):
    values = tensor.detach().flatten().double()
    assert values.abs().max() <= bound * (1 + 1e-6), \
        f'{name} leaves U(-{bound:.4g}, {bound:.4g})'
    expected = bound / math.sqrt(3)
    tolerance = 6 * math.sqrt(0.8 / values.numel()) / 2 * expected
    assert abs(values.std() - expected) <= tolerance, \
        f'{name}: std {values.std():.4g}, U(+-{bound:.4g}) has {expected:.4g}'


def assert_default_linear(module: nn.Module, name: str):
    """PyTorch's default: weight and bias in +-1/sqrt(fan_in)."""
    fan_in = module.weight[0].numel()
    assert_uniform(module.weight, 1 / math.sqrt(fan_in), name + '.weight')
    if module.bias is not None and module.bias.numel() >= 256:
        assert_uniform(module.bias, 1 / math.sqrt(fan_in), name + '.bias')


def assert_xavier(weight: torch.Tensor, name: str):
    fan_out, fan_in = weight.shape[0], weight[0].numel()
    if weight.dim() > 2:
        fan_out *= weight[0, 0].numel()
    assert_uniform(weight, math.sqrt(6 / (fan_in + fan_out)), name)


def test_encoder_keeps_pytorch_defaults(model):
    """Not mmcv ConvModule's Kaiming-normal fan_out."""
    convs = [(n, m) for n, m in model.neck.named_modules()
             if isinstance(m, nn.Conv2d)]
    assert len(convs) > 20
    for name, conv in convs:
        assert_default_linear(conv, f'neck.{name}')
    for name, norm in model.neck.named_modules():
        if isinstance(norm, (nn.BatchNorm2d, nn.LayerNorm)):
            assert torch.equal(norm.weight, torch.ones_like(norm.weight))
            assert torch.equal(norm.bias, torch.zeros_like(norm.bias))
    layer = model.neck.encoder[0][0]
    assert_xavier(layer.self_attn.in_proj_weight, 'AIFI in_proj_weight')
    assert not layer.self_attn.in_proj_bias.any()
    assert not layer.self_attn.out_proj.bias.any()
    out_proj = layer.self_attn.out_proj.weight
    assert_uniform(out_proj, 1 / math.sqrt(out_proj.shape[1]), 'out_proj')
    assert_default_linear(layer.linear1, 'AIFI linear1')
    assert_default_linear(layer.linear2, 'AIFI linear2')


def test_heads_are_independent_and_as_official(model):
    head = model.bbox_head
    num_layers = model.decoder.num_layers
    assert len(head.cls_branches) == len(head.reg_branches) == num_layers + 1
    for i, (cls, reg) in enumerate(zip(head.cls_branches, head.reg_branches)):
        assert torch.equal(cls.bias, torch.full_like(cls.bias, PRIOR))
        assert_default_linear(cls, f'cls_branches.{i}')
        linears = [m for m in reg if isinstance(m, nn.Linear)]
        for j, layer in enumerate(linears[:-1]):
            assert_default_linear(layer, f'reg_branches.{i}.{j}')
        assert not linears[-1].weight.any() and not linears[-1].bias.any()
    for branches in (head.cls_branches, head.reg_branches):
        first = [p for p in branches[0].parameters()][0]
        for other in list(branches)[1:]:
            assert not torch.equal(first, next(other.parameters())), \
                'layers start from the same head'


def test_decoder_as_official(model):
    weight = model.memory_proj[0].weight
    assert_xavier(weight, 'memory_proj (enc_output) weight')
    # The official code leaves enc_output's bias at PyTorch's default.
    bias = model.memory_proj[0].bias
    assert bias.any() and bias.abs().max() <= 1 / math.sqrt(weight.shape[1])
    for layer in model.decoder.query_pos_head.layers:
        assert_xavier(layer.weight, 'query_pos_head')
    for i, layer in enumerate(model.decoder.layers):
        assert_default_linear(layer.linear1, f'decoder.layers.{i}.linear1')
        assert_default_linear(layer.linear2, f'decoder.layers.{i}.linear2')
        attn = layer.cross_attn
        assert not attn.sampling_offsets.weight.any()
        assert not attn.attention_weights.weight.any()
        assert not attn.attention_weights.bias.any()
        for proj in (attn.value_proj, attn.output_proj):
            assert_xavier(proj.weight, f'decoder.layers.{i} projection')
            assert not proj.bias.any()


def test_denoising_table_is_standard_normal(model):
    table = model.dn_query_generator.label_embedding.weight.detach().double()
    tolerance = 6 * math.sqrt(2 / table.numel()) / 2
    assert abs(table.std() - 1) <= tolerance
    assert abs(table.mean()) <= 6 / math.sqrt(table.numel())
