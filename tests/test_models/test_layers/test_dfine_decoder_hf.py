# Copyright (c) OpenMMLab. All rights reserved.
"""Our DFineDecoder against HF transformers' executed ``DFineDecoder``.

HF runs in the oracle venv (:mod:`mmriformer.testing.hf_dfine_decoder_oracle`):
a small decoder of D-FINE-S's layout (3 levels with 3, 6 and 3 points,
``reg_max`` 32, ``reg_scale`` 4), with random, well-conditioned weights, on
fixed queries, boxes and memory, in training mode (every layer reports).
Its weights are converted by :func:`hf_dfine_decoder_to_ours`, must fill
our decoder exactly, and every layer's logits, boxes and edge
distributions, the pre-bbox head's and the initial boxes must equal HF's:
float64 to rounding, float32 within the error of HF's own float32 run.

Without the oracle venv (no package index to build it from) these tests
fail with the reason; they never skip.
"""
import pytest
import torch
from torch import nn

from mmriformer.converters.dfine import hf_dfine_decoder_to_ours
from mmriformer.models.layers import MLP, DFineDecoder, dfine_decoder
from mmriformer.models.utils import weighting_function
from mmriformer.testing import (assert_float32_error_within,
                                assert_float64_close, hf_dfine_decoder_oracle)
from mmriformer.testing.oracle import OracleUnavailable, run_oracle_script

NUM_LAYERS, EMBED_DIMS, NUM_CLASSES = 3, 64, 7
REG_MAX, REG_SCALE, UP = 32, 4.0, 0.5
SHAPES = [(8, 8), (4, 4), (2, 2)]
POINTS = [3, 6, 3]
NUM_BATCH, NUM_QUERIES = 2, 30
HF_CONFIG = dict(
    d_model=EMBED_DIMS,
    decoder_attention_heads=4,
    decoder_ffn_dim=128,
    decoder_layers=NUM_LAYERS,
    num_feature_levels=len(SHAPES),
    decoder_n_points=POINTS,
    decoder_offset_scale=0.5,
    decoder_activation_function='relu',
    max_num_bins=REG_MAX,
    reg_scale=REG_SCALE,
    up=UP,
    top_prob_values=4,
    lqe_hidden_dim=64,
    lqe_layers=2,
    dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    eval_idx=-1,
    layer_scale=1,
    encoder_hidden_dim=EMBED_DIMS,
    decoder_in_channels=[EMBED_DIMS] * len(SHAPES))
LAYER_CFG = dict(
    embed_dims=EMBED_DIMS,
    num_heads=4,
    feedforward_channels=128,
    num_levels=len(SHAPES),
    num_points=POINTS)
# Float64 on both sides; the two forms round differently by ~1e-15.
FLOAT64_TOL = 1e-12


def oracle_inputs():
    """Queries, initial boxes (logits, as HF takes them; sides about 0.2 of
    the image) and memory, float64."""
    gen = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    logits = randn(NUM_BATCH, NUM_QUERIES, 4) * 0.7
    logits[..., 2:] -= 1.5
    return dict(
        config=HF_CONFIG,
        num_classes=NUM_CLASSES,
        seed=1,
        query=randn(NUM_BATCH, NUM_QUERIES, EMBED_DIMS),
        reference_logits=logits,
        memory=randn(NUM_BATCH, sum(h * w for h, w in SHAPES), EMBED_DIMS),
        spatial_shapes=SHAPES)


@pytest.fixture(scope='module')
def oracle(tmp_path_factory):
    """The inputs and what HF's decoder made of them."""
    inputs = oracle_inputs()
    try:
        hf = run_oracle_script(hf_dfine_decoder_oracle.__file__, inputs,
                               str(tmp_path_factory.mktemp('hf_dfine_dec')))
    except OracleUnavailable as error:
        pytest.fail(f'The HF transformers oracle is unavailable, so the '
                    f'D-FINE decoder cannot be checked: {error}')
    return inputs, hf


def converted(hf_state):
    """Our decoder and branches with HF's weights, float64, loaded
    strictly; every HF tensor is accounted for."""
    own = {k: v for k, v in hf_state.items()
           if not k.startswith(('class_embed.', 'bbox_embed.'))}
    state = hf_dfine_decoder_to_ours(own)
    # q, k and v (weight and bias) become one in_proj pair, and
    # num_points_scale is dropped: 4 + 1 tensors fewer per layer.
    assert len(state) == len(own) - 5 * NUM_LAYERS
    decoder = DFineDecoder(NUM_LAYERS, LAYER_CFG, reg_max=REG_MAX,
                           reg_scale=REG_SCALE, up=UP)
    assert sorted(state) == sorted(decoder.state_dict()), (
        f'missing {sorted(set(decoder.state_dict()) - set(state))[:5]}, '
        f'unexpected {sorted(set(state) - set(decoder.state_dict()))[:5]}')
    decoder.load_state_dict(state, strict=True)

    cls_branches = nn.ModuleList(
        nn.Linear(EMBED_DIMS, NUM_CLASSES) for _ in range(NUM_LAYERS))
    reg_branches = nn.ModuleList(
        MLP(EMBED_DIMS, EMBED_DIMS, 4 * (REG_MAX + 1), 3)
        for _ in range(NUM_LAYERS))
    for prefix, module in (('class_embed.', cls_branches),
                           ('bbox_embed.', reg_branches)):
        part = {k[len(prefix):]: v for k, v in hf_state.items()
                if k.startswith(prefix)}
        assert len(part) == len(module.state_dict())
        module.load_state_dict(part, strict=True)
    return [m.double().train() for m in (decoder, reg_branches, cls_branches)]


def ours_as_hf(decoder, reg_branches, cls_branches, inputs, dtype):
    """Our outputs in HF's layout (module doc of the oracle)."""
    with torch.no_grad():
        out = decoder.to(dtype)(
            inputs['query'].to(dtype),
            inputs['reference_logits'].to(dtype).sigmoid(),
            inputs['memory'].to(dtype), SHAPES, reg_branches.to(dtype),
            cls_branches.to(dtype))
    return [
        torch.cat([out.pre_logits[:, None], out.logits.transpose(0, 1)], 1),
        torch.cat([out.pre_boxes[:, None], out.boxes.transpose(0, 1)], 1),
        out.corners.transpose(0, 1),
        out.initial_boxes[:, None].expand(-1, NUM_LAYERS, -1, -1)
    ]


def hf_outputs(hf, dtype):
    return list(hf[dtype][key] for key in hf_dfine_decoder_oracle.OUTPUTS)


def test_conditioning(oracle):
    """The comparison is not vacuous: queries do not tie, distributions
    are neither flat nor one-hot, boxes move from layer to layer."""
    _, hf = oracle
    logits, boxes, corners, _ = hf_outputs(hf, 'float64')
    scores = logits[:, -1].sigmoid().amax(-1).flatten()
    assert scores.unique().numel() == scores.numel()
    probs = corners.unflatten(-1, (4, REG_MAX + 1)).softmax(-1)
    peaks = probs.amax(-1)
    assert peaks.min() > 1.3 / (REG_MAX + 1) and peaks.max() < 0.95
    steps = (boxes[:, 1:] - boxes[:, :-1]).abs().amax(-1)
    assert steps.min() > 1e-4


def test_float64_equal_hf(oracle):
    inputs, hf = oracle
    ours = ours_as_hf(*converted(hf['state']), inputs, torch.float64)
    assert_float64_close(hf_outputs(hf, 'float64'), ours, FLOAT64_TOL)


def test_float32_within_hf_own_error(oracle):
    inputs, hf = oracle
    ours = ours_as_hf(*converted(hf['state']), inputs, torch.float32)
    assert_float32_error_within(hf_outputs(hf, 'float64'), ours,
                                hf_outputs(hf, 'float32'))


def test_altered_weighting_function_is_caught(oracle, monkeypatch):
    """W a thousandth steeper at its ends must fail the float64 check."""
    inputs, hf = oracle

    def steeper(reg_max, up, reg_scale):
        values = weighting_function(reg_max, up, reg_scale)
        return values * (1 + 1e-3 * (values.abs() / values.abs().max()))

    monkeypatch.setattr(dfine_decoder, 'weighting_function', steeper)
    ours = ours_as_hf(*converted(hf['state']), inputs, torch.float64)
    with pytest.raises(AssertionError, match='relative error'):
        assert_float64_close(hf_outputs(hf, 'float64'), ours, FLOAT64_TOL)
