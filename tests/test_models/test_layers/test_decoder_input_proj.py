# Copyright (c) OpenMMLab. All rights reserved.
import pytest
import torch

from mmriformer.models.layers import DecoderInputProjection

IN_CHANNELS = (16, 24, 32)
SIZES = (16, 8, 4)


def encoder_maps(dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, s, s, generator=gen, dtype=dtype) * 3 + 1
            for c, s in zip(IN_CHANNELS, SIZES)]


def test_levels_channels_and_sources():
    proj = DecoderInputProjection(IN_CHANNELS, 8, num_levels=5).double()
    proj.init_weights()
    feats = encoder_maps()
    outs = proj(feats)
    assert [tuple(o.shape) for o in outs] == [
        (2, 8, 16, 16), (2, 8, 8, 8), (2, 8, 4, 4), (2, 8, 2, 2),
        (2, 8, 1, 1)]
    assert all(p.conv.bias is None for p in proj)
    # The extra levels come from the coarsest encoder map alone.
    changed = [feats[0] + 1, feats[1] + 1, feats[2]]
    assert all(torch.equal(a, b) for a, b in zip(outs[2:], proj(changed)[2:]))
    changed = [feats[0], feats[1], feats[2] + 1]
    assert not any(torch.equal(a, b)
                   for a, b in zip(outs[2:], proj(changed)[2:]))


def test_memory_is_normalised_per_channel():
    """In training, BatchNorm gives each channel of each level mean 0 and
    variance v / (v + eps) (v: the conv output's biased variance), whatever
    the scale of the encoder maps; no activation clips the negative half."""
    proj = DecoderInputProjection(IN_CHANNELS, 8, num_levels=3).double()
    proj.init_weights()
    feats = [f * 50 for f in encoder_maps()]
    for projection, feat, out in zip(proj, feats, proj.train()(feats)):
        conv_out = projection.conv(feat)
        v = conv_out.var(dim=(0, 2, 3), unbiased=False)
        eps = projection.bn.eps
        assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-12
        torch.testing.assert_close(
            out.var(dim=(0, 2, 3), unbiased=False), v / (v + eps),
            rtol=1e-12, atol=0)
        assert (out < 0).any()


def test_fewer_levels_than_the_encoder_is_refused():
    with pytest.raises(ValueError, match=r'num_levels=2 but the encoder '
                       r'gives 3 feature levels; set decoder.layer_cfg.'
                       r'num_levels to at least 3'):
        DecoderInputProjection(IN_CHANNELS, 8, num_levels=2)
    proj = DecoderInputProjection(IN_CHANNELS, 8, num_levels=3)
    with pytest.raises(ValueError, match='Expected 3 encoder maps, got 2'):
        proj(encoder_maps(torch.float32)[:2])


def test_same_width_identity():
    """D-FINE: a level already of the decoder's width passes unchanged; the
    others are projected, and by default every level is."""
    proj = DecoderInputProjection(IN_CHANNELS, 24, num_levels=4,
                                  same_width_identity=True).double()
    proj.init_weights()
    assert isinstance(proj[1], torch.nn.Identity)
    assert [type(p).__name__ for p in proj] == [
        'ConvModule', 'Identity', 'ConvModule', 'ConvModule']
    feats = encoder_maps()
    assert torch.equal(proj(feats)[1], feats[1])
    default = DecoderInputProjection(IN_CHANNELS, 24, num_levels=3)
    assert all(hasattr(p, 'conv') for p in default)
