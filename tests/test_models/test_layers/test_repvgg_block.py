# Copyright (c) OpenMMLab. All rights reserved.
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import nn

from mmriformer.models import switch_to_deploy
from mmriformer.models.layers import CSPRepLayer, RepVggBlock
from mmriformer.models.utils import fold_conv_module, pad_1x1_to_3x3
from mmriformer.testing import assert_float64_close, randomize_

# Folds are checked in float64, where the folded and unfolded forms differ
# by rounding only (~1e-15 of the output scale for these few convs, against
# assert_float64_close's 1e-10); a dropped branch or bias, or BN statistics
# applied wrongly, change outputs by O(1) of their scale.
F64 = dict(dtype=torch.float64)


def _random_bn(channels, affine=True):
    bn = nn.BatchNorm2d(channels, affine=affine, **F64)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(channels))
        bn.running_var.copy_(torch.rand(channels) * 2 + 0.1)
        if affine:
            bn.weight.copy_(torch.randn(channels))
            bn.bias.copy_(torch.randn(channels))
    return bn.eval()


@pytest.mark.filterwarnings('ignore:Unnecessary conv bias')
@pytest.mark.parametrize('with_bias', [False, True])
@pytest.mark.parametrize('affine', [True, False])
def test_fold_conv_module(with_bias, affine):
    torch.manual_seed(0)
    module = ConvModule(6, 10, 3, padding=1, bias=with_bias,
                        norm_cfg=dict(type='BN', affine=affine),
                        act_cfg=None).to(torch.float64).eval()
    setattr(module, module.norm_name, _random_bn(10, affine))
    x = torch.randn(2, 6, 7, 5, **F64)
    with torch.no_grad():
        expected = module(x)
        weight, bias = fold_conv_module(module)
        got = F.conv2d(x, weight, bias, padding=1)
    assert not weight.requires_grad and not bias.requires_grad
    assert_float64_close(expected, got)


def test_fold_conv_module_without_norm():
    conv = ConvModule(3, 4, 1, norm_cfg=None, act_cfg=None, bias=False)
    weight, bias = fold_conv_module(conv)
    assert weight is conv.conv.weight.detach() or torch.equal(
        weight, conv.conv.weight)
    assert torch.equal(bias, torch.zeros(4))


@pytest.mark.parametrize('stride', [1, 2])
def test_pad_1x1_to_3x3(stride):
    torch.manual_seed(0)
    weight = torch.randn(4, 3, 1, 1, **F64)
    x = torch.randn(1, 3, 9, 8, **F64)
    padded = pad_1x1_to_3x3(weight)
    assert padded.shape == (4, 3, 3, 3)
    # 3x3 and 1x1 kernels take different conv algorithms.
    assert_float64_close(F.conv2d(x, weight, stride=stride),
                         F.conv2d(x, padded, stride=stride, padding=1))
    with pytest.raises(ValueError, match='1x1'):
        pad_1x1_to_3x3(padded)


def _eval_outputs(module, x):
    with torch.no_grad():
        return module.eval()(x)


@pytest.mark.parametrize('norm_cfg', [dict(type='BN'), None])
@pytest.mark.parametrize('act_cfg', [dict(type='SiLU'), None])
def test_rep_vgg_block_deploy_matches_train_form(norm_cfg, act_cfg):
    torch.manual_seed(0)
    block = randomize_(RepVggBlock(8, 12, norm_cfg=norm_cfg, act_cfg=act_cfg))
    block.double()
    x = torch.randn(2, 8, 10, 7, **F64)
    expected = _eval_outputs(block, x)
    block.switch_to_deploy()
    assert block.deploy
    assert not hasattr(block, 'conv1') and not hasattr(block, 'conv2')
    assert isinstance(block.conv, nn.Conv2d)
    assert block.conv.kernel_size == (3, 3) and block.conv.bias is not None
    got = _eval_outputs(block, x)
    assert got.shape == (2, 12, 10, 7)
    assert_float64_close(expected, got)
    # Folding twice changes nothing.
    block.switch_to_deploy()
    torch.testing.assert_close(_eval_outputs(block, x), got)


def test_rep_vgg_block_train_form_sums_branches():
    torch.manual_seed(0)
    block = randomize_(RepVggBlock(4, 4)).eval()
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        expected = F.silu(block.conv1(x) + block.conv2(x))
        torch.testing.assert_close(block(x), expected)
    assert block.conv1.conv.kernel_size == (3, 3)
    assert block.conv2.conv.kernel_size == (1, 1)
    assert isinstance(block.conv1.norm, nn.BatchNorm2d)


def test_rep_vgg_block_deploy_build_loads_folded_weights():
    torch.manual_seed(0)
    block = randomize_(RepVggBlock(6, 6))
    block.eval().switch_to_deploy()
    built = RepVggBlock(6, 6, deploy=True)
    built.load_state_dict(block.state_dict(), strict=True)
    x = torch.randn(1, 6, 5, 9)
    torch.testing.assert_close(
        _eval_outputs(built, x), _eval_outputs(block, x))


def test_rep_vgg_block_rejects_unfoldable_norm():
    block = RepVggBlock(8, 8, norm_cfg=dict(type='GN', num_groups=2))
    with pytest.raises(TypeError, match='BatchNorm'):
        block.switch_to_deploy()
    # Nothing was changed by the failed attempt.
    assert not block.deploy and hasattr(block, 'conv1')


@pytest.mark.parametrize('expansion', [1.0, 0.5])
def test_csp_rep_layer_deploy_matches_train_form(expansion):
    torch.manual_seed(0)
    layer = randomize_(CSPRepLayer(16, 8, num_blocks=2, expansion=expansion))
    layer.double()
    assert len(layer.bottlenecks) == 2
    hidden = int(8 * expansion)
    assert layer.conv1.conv.out_channels == hidden
    if hidden == 8:
        assert isinstance(layer.conv3, nn.Identity)
    else:
        assert isinstance(layer.conv3, ConvModule)
    x = torch.randn(2, 16, 9, 6, **F64)
    expected = _eval_outputs(layer, x)
    assert expected.shape == (2, 8, 9, 6)
    switch_to_deploy(layer)
    assert all(block.deploy for block in layer.bottlenecks)
    assert_float64_close(expected, _eval_outputs(layer, x))


def test_csp_rep_layer_output_formula():
    torch.manual_seed(0)
    layer = randomize_(CSPRepLayer(6, 8, num_blocks=1, expansion=0.5)).eval()
    x = torch.randn(1, 6, 4, 5)
    with torch.no_grad():
        expected = layer.conv3(
            layer.bottlenecks(layer.conv1(x)) + layer.conv2(x))
        torch.testing.assert_close(layer(x), expected)
    assert isinstance(layer.conv1.activate, nn.SiLU)
    assert isinstance(layer.conv2.activate, nn.SiLU)
