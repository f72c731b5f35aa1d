# Copyright (c) OpenMMLab. All rights reserved.
"""DFineHybridEncoder and its blocks: the official sizes, key names and
the RepVGG fold. Its wiring is checked with RT-DETR's in
test_hybrid_encoder.py, its equality with HF's executed encoder in
test_dfine_hybrid_encoder_hf.py."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

from mmriformer.models import switch_to_deploy
from mmriformer.models.layers import RepNCSPELAN4, RepVggBlock, SCDown
from mmriformer.models.necks import DFineHybridEncoder
from mmriformer.testing import assert_float64_close, randomize_

# configs/dfine/dfine_hgnetv2_{n,s,m,l,x}_coco.yml of Peterande/D-FINE,
# with (branch channels, RepVGG blocks per CSPRepLayer) they give.
SIZES = {
    'N': (dict(in_channels=[512, 1024], feat_strides=[16, 32],
               embed_dims=128, feedforward_channels=512,
               use_encoder_idx=[1], expansion=0.34, depth_mult=0.5), 21, 2),
    'S': (dict(in_channels=[256, 512, 1024], embed_dims=256,
               expansion=0.5, depth_mult=0.34), 64, 1),
    'M': (dict(in_channels=[384, 768, 1536], embed_dims=256,
               depth_mult=0.67), 128, 2),
    'L': (dict(in_channels=[512, 1024, 2048], embed_dims=256), 128, 3),
    'X': (dict(in_channels=[512, 1024, 2048], embed_dims=384,
               feedforward_channels=2048), 192, 3),
}
SMALL = dict(in_channels=[16, 24, 40], embed_dims=32, num_heads=4,
             feedforward_channels=64, expansion=0.5, depth_mult=0.67)


def _feats(height, width, channels, strides, dtype=torch.float32):
    return [
        torch.randn(2, c, math.ceil(height / s), math.ceil(width / s),
                    dtype=dtype) for c, s in zip(channels, strides)
    ]


@pytest.mark.parametrize('size', sorted(SIZES))
def test_official_sizes(size):
    cfg, branch, num_blocks = SIZES[size]
    model = MODELS.build(dict(type='DFineHybridEncoder', **cfg))
    dims = cfg['embed_dims']
    levels = len(cfg['in_channels'])
    assert model.out_channels == [dims] * levels
    for block in [*model.fpn_blocks, *model.pan_blocks]:
        assert isinstance(block, RepNCSPELAN4)
        assert block.cv1.conv.out_channels == 2 * dims
        for part in (block.cv2, block.cv3):
            assert part[0].conv1.conv.out_channels == branch
            assert part[1].conv.out_channels == branch
            assert len(part[0].bottlenecks) == num_blocks
        assert block.cv4.conv.in_channels == 2 * dims + 2 * branch
    for lateral in model.lateral_convs:
        assert not lateral.with_activation
    assert len(model.downsample_convs) == levels - 1
    # D-FINE's names (mmcv's 'bn' for 'norm'), e.g. the depth-wise conv.
    state = model.state_dict()
    assert state['downsample_convs.0.0.cv2.conv.weight'].shape == (dims, 1,
                                                                   3, 3)
    for key in ('downsample_convs.0.0.cv1.bn.running_var',
                f'fpn_blocks.0.cv2.0.bottlenecks.{num_blocks - 1}.conv2.bn.'
                f'weight', 'pan_blocks.0.cv3.1.conv.weight',
                'pan_blocks.0.cv4.bn.bias', 'encoder.0.0.linear2.weight'):
        assert key in state, key


def test_n_size_forward_shapes_odd_sizes():
    cfg = SIZES['N'][0]
    model = DFineHybridEncoder(**cfg).eval()
    feats = _feats(250, 330, cfg['in_channels'], cfg['feat_strides'])
    with torch.no_grad():
        outs = model(feats)
    assert [o.shape for o in outs] == [
        (2, 128, *f.shape[-2:]) for f in feats]


def test_rep_ncsp_elan4_by_hand():
    torch.manual_seed(0)
    block = randomize_(RepNCSPELAN4(12, 10, 8, 6, num_blocks=2)).eval()
    x = torch.randn(2, 12, 5, 7)
    with torch.no_grad():
        a, b = block.cv1(x).split(4, 1)
        c = block.cv2[1](block.cv2[0](b))
        d = block.cv3[1](block.cv3[0](c))
        torch.testing.assert_close(block(x), block.cv4(torch.cat([a, b, c, d],
                                                                 1)))
    with pytest.raises(ValueError, match='hidden_channels=7 must be even'):
        RepNCSPELAN4(12, 10, 7, 6)


def test_sc_down_is_depthwise_without_activation():
    torch.manual_seed(0)
    down = randomize_(SCDown(6, 8)).eval()
    x = torch.randn(1, 6, 9, 7)
    with torch.no_grad():
        y = F.batch_norm(
            F.conv2d(x, down.cv1.conv.weight), down.cv1.bn.running_mean,
            down.cv1.bn.running_var, down.cv1.bn.weight, down.cv1.bn.bias)
        y = F.batch_norm(
            F.conv2d(y, down.cv2.conv.weight, stride=2, padding=1,
                     groups=8), down.cv2.bn.running_mean,
            down.cv2.bn.running_var, down.cv2.bn.weight, down.cv2.bn.bias)
        got = down(x)
    assert got.shape == (1, 8, 5, 4)
    torch.testing.assert_close(got, y)


def test_deploy_matches_train_form():
    torch.manual_seed(0)
    model = randomize_(DFineHybridEncoder(**SMALL)).double()
    feats = _feats(128, 96, SMALL['in_channels'], (8, 16, 32), torch.float64)
    with torch.no_grad():
        expected = model.eval()(feats)
        switch_to_deploy(model)
        assert model.deploy
        # 2 blocks per CSPRepLayer, 2 CSPRepLayers per fusion block, 4
        # fusion blocks.
        assert sum(isinstance(m, RepVggBlock) for m in model.modules()) == 16
        assert_float64_close(expected, model(feats))
        built = DFineHybridEncoder(**SMALL, deploy=True).double().eval()
        built.load_state_dict(model.state_dict(), strict=True)
        assert_float64_close(expected, built(feats))


def test_expansion_too_small():
    with pytest.raises(ValueError, match='expansion=0.01 with embed_dims=32'):
        DFineHybridEncoder(**dict(SMALL, expansion=0.01))
