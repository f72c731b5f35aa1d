# Copyright (c) OpenMMLab. All rights reserved.
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import nn

from mmriformer.models import switch_to_deploy
from mmriformer.models.layers import (AIFILayer, CSPRepLayer, RepVggBlock,
                                      build_2d_sincos_position_embedding)
from mmriformer.models.necks import DFineHybridEncoder, HybridEncoder
from mmriformer.testing import (assert_float64_close, logged_messages,
                                max_rel_diff, randomize_)

IN_CHANNELS = [128, 320, 512]  # RIFormer-S at out_indices=(2, 4, 6)
SMALL = dict(embed_dims=32, num_heads=4, feedforward_channels=64)


def _encoder(**kwargs):
    return HybridEncoder(in_channels=IN_CHANNELS, **dict(SMALL, **kwargs))


def _feats(height, width, batch=2, channels=IN_CHANNELS, strides=(8, 16, 32),
           dtype=torch.float32):
    """Backbone-like maps for an image, sizes rounded up as strided convs."""
    return [
        torch.randn(batch, c, math.ceil(height / s), math.ceil(width / s),
                    dtype=dtype) for c, s in zip(channels, strides)
    ]


def _eval_outputs(model, feats):
    with torch.no_grad():
        return model.eval()(feats)


def test_output_shapes_non_square():
    model = _encoder()
    feats = _feats(256, 320)
    outs = model(feats)
    assert isinstance(outs, tuple) and len(outs) == 3
    assert [tuple(o.shape) for o in outs] == [(2, 32, 32, 40), (2, 32, 16, 20),
                                              (2, 32, 8, 10)]
    assert model.out_channels == [32, 32, 32]
    # AIFI on the stride-32 level only, 3 RepVGG blocks per CSPRepLayer.
    assert len(model.encoder) == 1 and len(model.encoder[0]) == 1
    assert isinstance(model.encoder[0][0], AIFILayer)
    for blocks in (model.fpn_blocks, model.pan_blocks):
        assert len(blocks) == 2
        assert all(isinstance(b, CSPRepLayer) for b in blocks)
        assert all(len(b.bottlenecks) == 3 for b in blocks)


def test_odd_feature_sizes():
    model = _encoder(depth_mult=1 / 3)
    feats = _feats(250, 330, batch=1)  # 32x42, 16x21, 8x11
    outs = _eval_outputs(model, feats)
    assert [o.shape[-2:] for o in outs] == [f.shape[-2:] for f in feats]


def test_build_from_registry():
    model = MODELS.build(
        dict(
            type='HybridEncoder',
            in_channels=IN_CHANNELS,
            use_encoder_idx=[-1],
            expansion=0.5,
            depth_mult=2 / 3,
            **SMALL))
    assert isinstance(model, HybridEncoder)
    assert model.use_encoder_idx == [2]
    assert len(model.fpn_blocks[0].bottlenecks) == 2
    assert model.fpn_blocks[0].conv1.conv.out_channels == 16
    assert model.input_proj[0].conv.bias is None
    assert not model.input_proj[0].with_activation


@pytest.mark.parametrize('encoder_type', [HybridEncoder, DFineHybridEncoder])
def test_ccfm_wiring_matches_reference(encoder_type):
    """RT-DETR's order, also D-FINE's: lateral outputs replace the coarse
    maps and feed the bottom-up path; upsampling is nearest x2."""
    torch.manual_seed(0)
    model = randomize_(
        encoder_type(in_channels=IN_CHANNELS, **SMALL)).eval()
    feats = _feats(128, 192, batch=1)
    with torch.no_grad():
        p0, p1, p2 = [proj(f) for proj, f in zip(model.input_proj, feats)]
        n, c, h, w = p2.shape
        tokens = p2.flatten(2).transpose(1, 2)
        pos = build_2d_sincos_position_embedding(w, h, c)
        tokens = model.encoder[0][0](tokens, pos)
        p2 = tokens.transpose(1, 2).reshape(n, c, h, w)

        def up(x):
            return F.interpolate(x, scale_factor=2., mode='nearest')

        lat2 = model.lateral_convs[0](p2)
        fpn1 = model.fpn_blocks[0](torch.cat([up(lat2), p1], 1))
        lat1 = model.lateral_convs[1](fpn1)
        out0 = model.fpn_blocks[1](torch.cat([up(lat1), p0], 1))
        out1 = model.pan_blocks[0](
            torch.cat([model.downsample_convs[0](out0), lat1], 1))
        out2 = model.pan_blocks[1](
            torch.cat([model.downsample_convs[1](out1), lat2], 1))
        got = model(feats)
    for a, b in zip(got, (out0, out1, out2)):
        torch.testing.assert_close(a, b)


def test_deploy_matches_train_form():
    torch.manual_seed(0)
    model = randomize_(_encoder(expansion=0.5)).double()
    feats = _feats(256, 320, dtype=torch.float64)
    expected = _eval_outputs(model, feats)
    switch_to_deploy(model)
    assert model.deploy
    blocks = [m for m in model.modules() if isinstance(m, RepVggBlock)]
    assert len(blocks) == 12 and all(b.deploy for b in blocks)
    got = _eval_outputs(model, feats)
    # Folded and run in float64: the forms differ by rounding (~1e-14
    # through these ~20 layers), a wrong fold by >= 1e-3.
    assert_float64_close(expected, got)

    built = _encoder(expansion=0.5, deploy=True).double()
    built.load_state_dict(model.state_dict(), strict=True)
    assert_float64_close(expected, _eval_outputs(built, feats))


def test_in_channels_mismatch():
    model = _encoder()
    with pytest.raises(ValueError) as err:
        model(_feats(64, 64, channels=[192, 384, 768]))
    message = str(err.value)
    assert 'in_channels=[128, 320, 512]' in message
    assert 'channels [192, 384, 768]' in message
    with pytest.raises(ValueError, match=r'channels \[128, 320\]'):
        model(_feats(64, 64, channels=[128, 320]))
    with pytest.raises(ValueError, match=r'\(N, C, H, W\)'):
        model([f.flatten(2) for f in _feats(64, 64)])


def test_invalid_arguments():
    with pytest.raises(ValueError, match='feat_strides'):
        _encoder(feat_strides=[16, 32])
    with pytest.raises(ValueError, match='use_encoder_idx'):
        _encoder(use_encoder_idx=[3])
    with pytest.raises(ValueError, match='embed_dims=30'):
        _encoder(embed_dims=30, num_heads=2)


def test_deprecated_names_build_the_same_encoder():
    torch.manual_seed(0)
    new = _encoder()
    torch.manual_seed(0)
    with logged_messages() as logged, \
            pytest.warns(DeprecationWarning) as warned:
        old = MODELS.build(
            dict(
                type='HybridEncoder',
                in_channels=IN_CHANNELS,
                hidden_dim=32,
                num_heads=4,
                dim_feedforward=64))
    expected = ['hidden_dim is deprecated and will be removed in the next '
                'release; use embed_dims instead (embed_dims=32)',
                'dim_feedforward is deprecated and will be removed in the '
                'next release; use feedforward_channels instead '
                '(feedforward_channels=64)']
    for text in expected:
        assert any(text in str(w.message) for w in warned), text
        assert any(text in message for message in logged), text
    assert old.embed_dims == 32
    new_state, old_state = new.state_dict(), old.state_dict()
    assert list(new_state) == list(old_state)
    assert all(torch.equal(new_state[k], old_state[k]) for k in new_state)


def test_deprecated_name_next_to_new_one():
    # The same value twice is only deprecated.
    with pytest.warns(DeprecationWarning, match='use embed_dims instead'):
        assert _encoder(hidden_dim=32).embed_dims == 32
    with pytest.raises(ValueError, match='HybridEncoder got hidden_dim=64 '
                       'and embed_dims=32; hidden_dim is the old name of '
                       'embed_dims: set only embed_dims'):
        _encoder(hidden_dim=64)
    with pytest.raises(ValueError, match='got dim_feedforward=32 and '
                       'feedforward_channels=64; dim_feedforward is the old '
                       'name of feedforward_channels'):
        _encoder(dim_feedforward=32)


def _slow_sincos(w, h, embed_dim, temperature, dtype=torch.float32):
    """Element by element: row y drives the first half, column x the
    second."""
    pos_dim = embed_dim // 4
    out = torch.empty(h * w, embed_dim, dtype=torch.float64)
    for y in range(h):
        for x in range(w):
            for k in range(pos_dim):
                omega = 1. / temperature**(k / pos_dim)
                token = y * w + x
                out[token, k] = math.sin(y * omega)
                out[token, pos_dim + k] = math.cos(y * omega)
                out[token, 2 * pos_dim + k] = math.sin(x * omega)
                out[token, 3 * pos_dim + k] = math.cos(x * omega)
    return out[None].to(dtype)


@pytest.mark.parametrize('w, h', [(5, 3), (2, 4), (4, 4)])
def test_sincos_matches_slow_formula(w, h):
    got = build_2d_sincos_position_embedding(w, h, 16, 100.)
    assert got.shape == (1, h * w, 16) and got.dtype == torch.float32
    torch.testing.assert_close(got, _slow_sincos(w, h, 16, 100.))


def test_sincos_matches_rt_detr_on_square_maps():
    """RT-DETR's formula: meshgrid(w, h, indexing='ij'), then flatten."""
    size, embed_dim, temperature = 6, 32, 10000.
    grid_w, grid_h = torch.meshgrid(
        torch.arange(size, dtype=torch.float32),
        torch.arange(size, dtype=torch.float32),
        indexing='ij')
    pos_dim = embed_dim // 4
    omega = 1. / temperature**(torch.arange(pos_dim) / pos_dim)
    out_w = grid_w.flatten()[:, None] * omega[None]
    out_h = grid_h.flatten()[:, None] * omega[None]
    expected = torch.cat(
        [out_w.sin(), out_w.cos(),
         out_h.sin(), out_h.cos()], dim=1)[None]
    torch.testing.assert_close(
        build_2d_sincos_position_embedding(size, size, embed_dim, temperature),
        expected)


def test_sincos_rejects_bad_embed_dim():
    with pytest.raises(ValueError, match='divisible by 4'):
        build_2d_sincos_position_embedding(4, 4, 18)


def test_eval_spatial_size_buffer():
    torch.manual_seed(0)
    model = _encoder(eval_spatial_size=[256, 320]).eval()
    pos = model.pos_embed2
    assert pos.shape == (1, 8 * 10, 32)
    torch.testing.assert_close(
        pos, build_2d_sincos_position_embedding(10, 8, 32, 10000.))
    assert not any(k.startswith('pos_embed') for k in model.state_dict())

    feats, other = _feats(256, 320, batch=1), _feats(192, 320, batch=1)
    expected, expected_other = _eval_outputs(model, feats), _eval_outputs(
        model, other)
    # The cached embedding is what a matching input uses, and only that.
    model.pos_embed2.zero_()
    changed = _eval_outputs(model, feats)
    assert max_rel_diff(expected, changed) > 1e-3
    assert max_rel_diff(expected_other, _eval_outputs(model, other)) == 0


def test_gradients_reach_input_projections():
    torch.manual_seed(0)
    model = _encoder().train()
    feats = [f.requires_grad_() for f in _feats(128, 96)]
    sum(o.square().mean() for o in model(feats)).backward()
    for proj in model.input_proj:
        grad = proj.conv.weight.grad
        assert grad is not None and torch.isfinite(grad).all()
        assert grad.abs().sum() > 0
    for name, param in model.encoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(f.grad.abs().sum() > 0 for f in feats)


def test_aifi_layer_matches_torch_post_norm_layer():
    torch.manual_seed(0)
    ours = AIFILayer(16, 4, 32).double().eval()
    theirs = nn.TransformerEncoderLayer(
        16, 4, 32, dropout=0., activation='gelu', batch_first=True)
    theirs.double().eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    with torch.no_grad():
        # torch may run its fused encoder-layer kernel; in float64 it and
        # our plain ops differ by ~1e-15, a misplaced norm or residual by
        # O(1).
        assert_float64_close(theirs(x), ours(x))


def test_aifi_layer_adds_pos_to_queries_and_keys_only():
    torch.manual_seed(0)
    layer = AIFILayer(16, 4, 32).eval()
    x, pos = torch.randn(1, 6, 16), torch.randn(1, 6, 16)
    with torch.no_grad():
        assert (layer(x, pos) - layer(x)).abs().max() > 1e-3
        # With zero query/key projections the attention is uniform, so a
        # position embedding that stays out of the values has no effect.
        layer.self_attn.in_proj_weight[:32].zero_()
        layer.self_attn.in_proj_bias[:32].zero_()
        torch.testing.assert_close(layer(x, pos), layer(x))


@pytest.mark.parametrize('deploy', [False, True])
def test_torch_compile_fullgraph(deploy):
    """The encoder compiles as one graph (no graph breaks), train and
    deploy form, and computes what eager mode does."""
    model = randomize_(_encoder())
    if deploy:
        switch_to_deploy(model)
    feats = _feats(64, 96, dtype=torch.float64)
    model = model.double().eval()
    torch._dynamo.reset()
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    with torch.no_grad():
        assert_float64_close(model(feats), compiled(feats))


def test_sincos_float64():
    """Float64 models get the embedding at float64 precision (HF's D-FINE
    computes it so)."""
    got = build_2d_sincos_position_embedding(5, 3, 16, 100.,
                                             dtype=torch.float64)
    assert got.dtype == torch.float64
    exact = _slow_sincos(5, 3, 16, 100., torch.float64)
    assert (got - exact).abs().max() < 1e-14
    # Not float32 values: those are off by ~1e-7.
    float32 = build_2d_sincos_position_embedding(5, 3, 16, 100.)
    assert (float32.double() - exact).abs().max() > 1e-9
