# Copyright (c) OpenMMLab. All rights reserved.
"""Our DFineHybridEncoder against HF transformers' executed
``DFineHybridEncoder``.

HF runs in the oracle venv (:mod:`mmriformer.testing.hf_dfine_encoder_oracle`):
the input projections and the encoder of D-FINE-N and D-FINE-S, at their
official channel settings, with random, well-conditioned weights and norm
statistics, on fixed non-square backbone maps, in eval mode. Its weights
are converted by :func:`hf_dfine_encoder_to_ours`, must fill our encoder
exactly, and every output map must equal HF's: float64 to rounding,
float32 within the error of HF's own float32 run.

Without the oracle venv (no package index to build it from) these tests
fail with the reason; they never skip.
"""
import pytest
import torch

from mmriformer.converters.dfine import hf_dfine_encoder_to_ours
from mmriformer.models.layers import RepNCSPELAN4
from mmriformer.models.necks import DFineHybridEncoder
from mmriformer.testing import (assert_float32_error_within,
                                assert_float64_close, hf_dfine_encoder_oracle)
from mmriformer.testing.oracle import OracleUnavailable, run_oracle_script

# configs/dfine/dfine_hgnetv2_{n,s}_coco.yml of Peterande/D-FINE.
SIZES = {
    'N':
    dict(
        in_channels=[512, 1024],
        feat_strides=[16, 32],
        embed_dims=128,
        feedforward_channels=512,
        use_encoder_idx=[1],
        expansion=0.34,
        depth_mult=0.5),
    'S':
    dict(
        in_channels=[256, 512, 1024],
        feat_strides=[8, 16, 32],
        embed_dims=256,
        feedforward_channels=1024,
        use_encoder_idx=[2],
        expansion=0.5,
        depth_mult=0.34),
}
# The coarsest map of a 128 x 96 image: non-square, so a swapped row and
# column in the position embedding shows.
COARSEST = (4, 3)
BATCH = 2
FLOAT64_TOL = 1e-12


def hf_config(ours):
    return dict(
        encoder_in_channels=ours['in_channels'],
        feat_strides=ours['feat_strides'],
        encoder_hidden_dim=ours['embed_dims'],
        encoder_ffn_dim=ours['feedforward_channels'],
        encode_proj_layers=ours['use_encoder_idx'],
        hidden_expansion=ours['expansion'],
        depth_mult=ours['depth_mult'],
        encoder_attention_heads=8,
        encoder_layers=1,
        dropout=0.0,
        eval_size=None)


def oracle_inputs(size):
    gen = torch.Generator().manual_seed(0)
    channels = SIZES[size]['in_channels']
    h, w = COARSEST
    scales = [2**(len(channels) - 1 - i) for i in range(len(channels))]
    return dict(
        config=hf_config(SIZES[size]),
        seed=1,
        feats=[
            torch.randn(BATCH, c, h * s, w * s, generator=gen,
                        dtype=torch.float64)
            for c, s in zip(channels, scales)
        ])


@pytest.fixture(scope='module', params=sorted(SIZES))
def oracle(request, tmp_path_factory):
    """The size, its inputs and what HF's encoder made of them."""
    size = request.param
    inputs = oracle_inputs(size)
    try:
        hf = run_oracle_script(
            hf_dfine_encoder_oracle.__file__, inputs,
            str(tmp_path_factory.mktemp(f'hf_dfine_enc_{size}')))
    except OracleUnavailable as error:
        pytest.fail(f'The HF transformers oracle is unavailable, so the '
                    f'D-FINE encoder cannot be checked: {error}')
    return size, inputs, hf


def converted(size, hf_state):
    """Our encoder with HF's weights, float64, eval, loaded strictly;
    every HF tensor is accounted for."""
    state = hf_dfine_encoder_to_ours(hf_state)
    # q, k and v (weight and bias) become one in_proj pair per AIFI layer.
    num_aifi = len(SIZES[size]['use_encoder_idx'])
    assert len(state) == len(hf_state) - 4 * num_aifi
    model = DFineHybridEncoder(**SIZES[size])
    expected = model.state_dict()
    assert sorted(state) == sorted(expected), (
        f'missing {sorted(set(expected) - set(state))[:5]}, '
        f'unexpected {sorted(set(state) - set(expected))[:5]}')
    assert all(state[k].shape == expected[k].shape for k in state)
    model.load_state_dict(state, strict=True)
    return model.double().eval()


def ours(model, inputs, dtype):
    with torch.no_grad():
        return list(model.to(dtype)([f.to(dtype) for f in inputs['feats']]))


def test_conditioning(oracle):
    """The comparison is not vacuous: outputs are of order one, vary
    across positions and channels, and differ between the two images."""
    _, _, hf = oracle
    for out in hf['float64']:
        assert 0.1 < out.std() < 10
        assert out.std(dim=(2, 3)).min() > 1e-3
        assert (out[0] - out[1]).abs().max() > 0.1 * out.abs().max()


def test_layout_is_the_official_size(oracle):
    size, _, hf = oracle
    model = converted(size, hf['state'])
    blocks = [m for m in model.modules() if isinstance(m, RepNCSPELAN4)]
    branch = {'N': 21, 'S': 64}[size]
    num_blocks = {'N': 2, 'S': 1}[size]
    assert all(b.cv2[1].conv.out_channels == branch for b in blocks)
    assert all(len(b.cv2[0].bottlenecks) == num_blocks for b in blocks)


def test_float64_equal_hf(oracle):
    size, inputs, hf = oracle
    got = ours(converted(size, hf['state']), inputs, torch.float64)
    assert_float64_close(hf['float64'], got, FLOAT64_TOL)


def test_float32_within_hf_own_error(oracle):
    size, inputs, hf = oracle
    got = ours(converted(size, hf['state']), inputs, torch.float32)
    assert_float32_error_within(hf['float64'], got, hf['float32'])


def test_lateral_activation_is_caught(oracle):
    """A SiLU on the lateral convs (RT-DETR's, not D-FINE's) must fail the
    float64 check."""
    size, inputs, hf = oracle
    model = converted(size, hf['state'])
    for lateral in model.lateral_convs:
        lateral.with_activation = True
        lateral.activate = torch.nn.SiLU()
    got = ours(model, inputs, torch.float64)
    with pytest.raises(AssertionError, match='relative error'):
        assert_float64_close(hf['float64'], got, FLOAT64_TOL)
