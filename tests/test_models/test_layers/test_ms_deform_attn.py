# Copyright (c) OpenMMLab. All rights reserved.
import math

import pytest
import torch
from mmdet.registry import MODELS

from mmriformer.models.layers import (MSDeformableAttention,
                                      multi_scale_deformable_attn)
from mmriformer.testing import assert_float64_close, random_queries

# Non-square levels, different in both directions.
SHAPES = [(5, 7), (3, 2), (1, 4)]


def slow_deformable_attn(value, spatial_shapes, locations, weights):
    """Loop over everything; bilinear by hand, zero outside the map.

    Pixel (i, j) of an H x W level has its centre at ((j + .5) / W,
    (i + .5) / H) (the align_corners=False convention).
    """
    num_batch, _, num_heads, head_dim = value.shape
    _, num_query, _, num_levels, num_points, _ = locations.shape
    out = torch.zeros(
        num_batch, num_query, num_heads, head_dim, dtype=torch.float64)
    for n in range(num_batch):
        for q in range(num_query):
            for h in range(num_heads):
                start = 0
                for lvl in range(num_levels):
                    height, width = spatial_shapes[lvl]
                    for p in range(num_points):
                        x = locations[n, q, h, lvl, p, 0].item() * width - .5
                        y = locations[n, q, h, lvl, p, 1].item() * height - .5
                        x0, y0 = math.floor(x), math.floor(y)
                        sample = torch.zeros(head_dim, dtype=torch.float64)
                        for xi, wx in ((x0, x0 + 1 - x), (x0 + 1, x - x0)):
                            for yi, wy in ((y0, y0 + 1 - y), (y0 + 1, y - y0)):
                                if 0 <= xi < width and 0 <= yi < height:
                                    pixel = value[n, start + yi * width + xi,
                                                  h].double()
                                    sample += wx * wy * pixel
                        weight = weights[n, q, h, lvl, p].item()
                        out[n, q, h] += weight * sample
                    start += height * width
    return out.flatten(2)


def random_inputs(num_batch=2,
                  num_query=5,
                  num_heads=2,
                  head_dim=3,
                  num_points=3,
                  shapes=SHAPES,
                  seed=0,
                  dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    num_value = sum(h * w for h, w in shapes)
    value = torch.randn(
        num_batch, num_value, num_heads, head_dim, generator=gen, dtype=dtype)
    # A margin beyond [0, 1] covers the zero padding around the map.
    sample_shape = (num_batch, num_query, num_heads, len(shapes), num_points)
    locations = torch.rand(*sample_shape, 2, generator=gen, dtype=dtype)
    locations = locations * 1.3 - 0.15
    weights = torch.rand(*sample_shape, generator=gen, dtype=dtype)
    return value, locations, weights


def test_function_matches_slow_reference():
    value, locations, weights = random_inputs(dtype=torch.float64)
    assert ((locations < 0) | (locations > 1)).any()
    got = multi_scale_deformable_attn(value, SHAPES, locations, weights)
    expected = slow_deformable_attn(value, SHAPES, locations, weights)
    assert got.shape == (2, 5, 2 * 3)
    # Both in float64: grid_sample's and our bilinear weights differ by
    # ~1e-15; a half-pixel shift or a swapped x/y changes samples by O(1).
    assert_float64_close(expected, got)


def test_function_reads_pixel_centres_exactly():
    # At a pixel centre bilinear sampling returns that pixel alone.
    height, width = 3, 4
    value = torch.arange(
        height * width, dtype=torch.float64).view(1, height * width, 1, 1)
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float64),
        torch.arange(width, dtype=torch.float64),
        indexing='ij')
    centres = torch.stack([(cols + .5) / width, (rows + .5) / height], -1)
    locations = centres.view(1, -1, 1, 1, 1, 2)
    weights = torch.ones(1, height * width, 1, 1, 1, dtype=torch.float64)
    got = multi_scale_deformable_attn(value, [(height, width)], locations,
                                      weights)
    # float64: the centre maps back to the pixel up to ~1e-15; a
    # neighbour's value is >= 1 away.
    assert_float64_close(value.flatten(), got.flatten())


def test_function_rejects_tensor_shapes_and_mismatch():
    value, locations, weights = random_inputs()
    with pytest.raises(TypeError):
        multi_scale_deformable_attn(value, torch.tensor(SHAPES), locations,
                                    weights)
    with pytest.raises(ValueError):
        multi_scale_deformable_attn(value, [(5, 7), (3, 2), (2, 3)], locations,
                                    weights)


def test_function_gradients():
    value, locations, weights = random_inputs(
        num_batch=1, num_query=2, num_points=2, dtype=torch.float64)
    inputs = [t.requires_grad_() for t in (value, locations, weights)]

    def func(v, loc, w):
        return multi_scale_deformable_attn(v, SHAPES, loc, w)

    out = func(*inputs)
    out.square().sum().backward()
    for t in inputs:
        assert t.grad is not None and t.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(func, inputs, eps=1e-6, atol=1e-5)


def build_module(**kwargs):
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='MSDeformableAttention',
            embed_dims=16,
            num_heads=4,
            num_levels=len(SHAPES),
            num_points=3,
            **kwargs))


def module_inputs(dtype=torch.float32):
    return random_queries(SHAPES, 2, 6, 16, seed=1, dtype=dtype)


def test_module_init():
    attn = build_module()
    assert isinstance(attn, MSDeformableAttention)
    assert (attn.sampling_offsets.weight == 0).all()
    assert (attn.attention_weights.weight == 0).all()
    assert (attn.attention_weights.bias == 0).all()
    bias = attn.sampling_offsets.bias.view(4, len(SHAPES), 3, 2)
    # 4 heads: right, down, left, up; point p is p steps out on every level.
    directions = torch.tensor([[1., 0.], [0., 1.], [-1., 0.], [0., -1.]])
    steps = torch.arange(1., 4.)
    expected = directions[:, None, None] * steps[None, None, :, None]
    torch.testing.assert_close(
        bias, expected.expand_as(bias), atol=1e-6, rtol=0)


def test_module_sampling_locations():
    """Locations are ref_xy + offset / num_points * ref_wh / 2."""
    attn = build_module().double()
    query, boxes, value = module_inputs(dtype=torch.float64)
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(std=.3)
        got = attn(query, boxes, value, SHAPES)

        num_batch, num_query, _ = query.shape
        offsets = attn.sampling_offsets(query).view(num_batch, num_query, 4,
                                                    len(SHAPES), 3, 2)
        weights = attn.attention_weights(query).view(num_batch, num_query, 4,
                                                     -1)
        weights = weights.softmax(-1).view(num_batch, num_query, 4,
                                           len(SHAPES), 3)
        locations = (
            boxes[:, :, None, None, None, :2] +
            offsets * boxes[:, :, None, None, None, 2:] / (2 * 3))
        values = attn.value_proj(value).view(num_batch, -1, 4, 4)
        expected = attn.output_proj(
            slow_deformable_attn(values, SHAPES, locations, weights))
    assert got.shape == (num_batch, num_query, 16)
    # float64 throughout: rounding ~1e-15; a wrong offset scale or softmax
    # axis moves the samples and changes the output by O(1e-1).
    assert_float64_close(expected, got)


def test_module_gradients():
    attn = build_module()
    query, boxes, value = module_inputs()
    value.requires_grad_()
    attn(query, boxes, value, SHAPES).square().sum().backward()
    assert value.grad.abs().sum() > 0
    for linear in (attn.sampling_offsets, attn.attention_weights,
                   attn.value_proj, attn.output_proj):
        assert linear.weight.grad.abs().sum() > 0


def test_module_value_mask():
    attn = build_module()
    query, boxes, value = module_inputs()
    mask = torch.rand(
        value.shape[:2], generator=torch.Generator().manual_seed(2)) > .3
    changed = value + 10 * (~mask)[..., None]
    out = attn(query, boxes, value, SHAPES, value_mask=mask)
    # Masked tokens are ignored; without the mask they are not.
    torch.testing.assert_close(
        attn(query, boxes, changed, SHAPES, value_mask=mask), out)
    assert not torch.allclose(attn(query, boxes, changed, SHAPES), out)
