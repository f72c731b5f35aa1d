# Copyright (c) OpenMMLab. All rights reserved.
"""RT-DETRv2's options of MSDeformableAttention: points per level and
discrete (nearest-pixel) sampling."""
import math

import pytest
import torch
from mmdet.registry import MODELS

from mmriformer.models.layers import RTDETRDecoderLayer
from mmriformer.models.layers.ms_deform_attn import (
    multi_scale_deformable_attn, multi_scale_deformable_attn_discrete)
from mmriformer.testing import (assert_float64_close, forbid_host_sync,
                                random_queries)

# Non-square levels, different in both directions.
SHAPES = [(5, 7), (3, 2), (1, 4)]
UNEVEN = [2, 4, 3]


def slow_attn(value, spatial_shapes, locations, weights, num_points,
              discrete):
    """Loop over every sample of the concatenated layout, in float64.

    Bilinear: pixel (i, j) has its centre at ((j + .5) / W, (i + .5) / H),
    zero outside the map. Discrete (RT-DETRv2's): pixel
    (round(y * H), round(x * W)) with halves rounded up, the border pixel
    outside the map.
    """
    num_batch, _, num_heads, head_dim = value.shape
    num_query = locations.shape[1]
    out = torch.zeros(
        num_batch, num_query, num_heads, head_dim, dtype=torch.float64)
    # Level and first pixel of each sample.
    levels = [lvl for lvl, n in enumerate(num_points) for _ in range(n)]
    starts = [0]
    for height, width in spatial_shapes:
        starts.append(starts[-1] + height * width)
    for n in range(num_batch):
        for q in range(num_query):
            for h in range(num_heads):
                for s, lvl in enumerate(levels):
                    height, width = spatial_shapes[lvl]
                    loc_x, loc_y = locations[n, q, h, s].tolist()

                    def pixel(row, col):
                        return value[n, starts[lvl] + row * width + col, h]

                    if discrete:
                        col = min(max(math.floor(loc_x * width + .5), 0),
                                  width - 1)
                        row = min(max(math.floor(loc_y * height + .5), 0),
                                  height - 1)
                        sample = pixel(row, col).double()
                    else:
                        x, y = loc_x * width - .5, loc_y * height - .5
                        x0, y0 = math.floor(x), math.floor(y)
                        sample = torch.zeros(head_dim, dtype=torch.float64)
                        for col, wx in ((x0, x0 + 1 - x), (x0 + 1, x - x0)):
                            for row, wy in ((y0, y0 + 1 - y),
                                            (y0 + 1, y - y0)):
                                if 0 <= col < width and 0 <= row < height:
                                    sample += wx * wy * pixel(row, col)
                    out[n, q, h] += weights[n, q, h, s].item() * sample
    return out.flatten(2)


def random_inputs(num_points, seed=0, num_batch=2, num_query=5, num_heads=2,
                  head_dim=3):
    """Float64 value, locations and weights in the concatenated layout."""
    gen = torch.Generator().manual_seed(seed)
    num_value = sum(h * w for h, w in SHAPES)
    value = torch.randn(num_batch, num_value, num_heads, head_dim,
                        generator=gen, dtype=torch.float64)
    sample_shape = (num_batch, num_query, num_heads, sum(num_points))
    # A margin beyond [0, 1] covers the clamp (discrete) and the zero
    # padding (bilinear) around the map.
    locations = torch.rand(*sample_shape, 2, generator=gen,
                           dtype=torch.float64) * 1.3 - .15
    weights = torch.rand(*sample_shape, generator=gen, dtype=torch.float64)
    return value, locations, weights


@pytest.mark.parametrize('discrete', [False, True])
def test_uneven_points_match_slow_reference(discrete):
    value, locations, weights = random_inputs(UNEVEN)
    assert ((locations < 0) | (locations > 1)).any()
    func = (multi_scale_deformable_attn_discrete
            if discrete else multi_scale_deformable_attn)
    got = func(value, SHAPES, locations, weights, UNEVEN)
    expected = slow_attn(value, SHAPES, locations, weights, UNEVEN, discrete)
    assert got.shape == (2, 5, 2 * 3)
    # float64: the discrete samples are the same pixels, only summed in
    # another order (~1e-16); bilinear weights differ by ~1e-15. Reading
    # a pixel half a pixel off (floor instead of round) or a point's level
    # wrongly changes the output by O(1).
    assert_float64_close(expected, got)


def test_discrete_at_corners_equals_bilinear_at_centres():
    """RT-DETRv2's rounding: a point at a pixel's top-left corner reads
    that pixel, which bilinear sampling reads at the pixel's centre."""
    gen = torch.Generator().manual_seed(1)
    value, _, _ = random_inputs(UNEVEN, seed=1)
    num_batch, num_query, num_heads = 2, 5, 2
    # Random pixels of each sample's level: their corners and centres.
    corners, centres = [], []
    for lvl, n in enumerate(UNEVEN):
        height, width = SHAPES[lvl]
        shape = (num_batch, num_query, num_heads, n)
        cols = torch.randint(width, shape, generator=gen).double()
        rows = torch.randint(height, shape, generator=gen).double()
        corners.append(torch.stack([cols / width, rows / height], -1))
        centres.append(
            torch.stack([(cols + .5) / width, (rows + .5) / height], -1))
    weights = torch.rand((num_batch, num_query, num_heads, sum(UNEVEN)),
                         generator=gen, dtype=torch.float64)
    bilinear = multi_scale_deformable_attn(value, SHAPES,
                                           torch.cat(centres, dim=3),
                                           weights, UNEVEN)
    discrete = multi_scale_deformable_attn_discrete(value, SHAPES,
                                                    torch.cat(corners, dim=3),
                                                    weights, UNEVEN)
    # float64: at a centre bilinear sampling weighs its pixel 1 - ~1e-15;
    # any other pixel differs by O(1).
    assert_float64_close(bilinear, discrete)


@pytest.mark.parametrize('discrete', [False, True])
def test_layouts_agree(discrete):
    """With the same points everywhere, the (levels, points) layout and the
    concatenated one are the same numbers; both give the same result."""
    value, locations, weights = random_inputs([3, 3, 3])
    func = (multi_scale_deformable_attn_discrete
            if discrete else multi_scale_deformable_attn)
    flat = func(value, SHAPES, locations, weights, [3, 3, 3])
    nested = func(value, SHAPES, locations.unflatten(3, (3, 3)),
                  weights.unflatten(3, (3, 3)))
    assert torch.equal(flat, nested)


def test_function_gradients():
    value, locations, weights = random_inputs(
        UNEVEN, num_batch=1, num_query=2)
    inputs = [t.requires_grad_() for t in (value, locations, weights)]

    def bilinear(v, loc, w):
        return multi_scale_deformable_attn(v, SHAPES, loc, w, UNEVEN)

    assert torch.autograd.gradcheck(bilinear, inputs, eps=1e-6, atol=1e-5)

    # Discrete: the output is linear in value and weights, constant in the
    # locations (which only pick pixels).
    out = multi_scale_deformable_attn_discrete(value, SHAPES, locations,
                                               weights, UNEVEN)
    grads = torch.autograd.grad(
        out.square().sum(), inputs, allow_unused=True)
    assert grads[0].abs().sum() > 0 and grads[2].abs().sum() > 0
    assert grads[1] is None or not grads[1].any()


def test_function_rejects_mismatched_points():
    value, locations, weights = random_inputs(UNEVEN)
    for num_points in ([2, 4], [2, 4, 4]):
        for func in (multi_scale_deformable_attn,
                     multi_scale_deformable_attn_discrete):
            with pytest.raises(ValueError, match='num_points'):
                func(value, SHAPES, locations, weights, num_points)
    with pytest.raises(ValueError, match='without num_points'):
        multi_scale_deformable_attn(value, SHAPES, locations, weights)


def build_module(num_points, method='default', seed=0):
    torch.manual_seed(seed)
    return MODELS.build(
        dict(
            type='MSDeformableAttention',
            embed_dims=16,
            num_heads=4,
            num_levels=len(SHAPES),
            num_points=num_points,
            method=method))


def test_uniform_list_equals_int():
    """[4, 4, 4] is the int 4: same parameters, same outputs and
    gradients, bit for bit (the same operations run)."""
    modules = [build_module(4), build_module([4, 4, 4])]
    assert modules[0].num_points == modules[1].num_points == (4, 4, 4)
    for name, tensor in modules[0].state_dict().items():
        assert torch.equal(tensor, modules[1].state_dict()[name]), name
    query, boxes, value = random_queries(SHAPES, 2, 6, 16, seed=1)
    results = []
    for attn in modules:
        with torch.no_grad():
            for i, p in enumerate(attn.parameters()):
                p.copy_(torch.randn(p.shape,
                                    generator=torch.Generator().manual_seed(i))
                        * .3)
        out = attn(query, boxes, value, SHAPES)
        out.square().sum().backward()
        results.append([out] + [p.grad for p in attn.parameters()])
    for got, expected in zip(*results):
        assert torch.equal(got, expected)


def test_uneven_init():
    attn = build_module(UNEVEN)
    assert attn.sampling_offsets.out_features == 4 * sum(UNEVEN) * 2
    assert attn.attention_weights.out_features == 4 * sum(UNEVEN)
    bias = attn.sampling_offsets.bias.view(4, sum(UNEVEN), 2)
    # 4 heads: right, down, left, up; point p of a level is p steps out.
    directions = torch.tensor([[1., 0.], [0., 1.], [-1., 0.], [0., -1.]])
    steps = torch.tensor([1., 2., 1., 2., 3., 4., 1., 2., 3.])
    torch.testing.assert_close(
        bias, directions[:, None] * steps[None, :, None], atol=1e-6, rtol=0)


@pytest.mark.parametrize('method', ['default', 'discrete'])
def test_module_uneven_points(method):
    """Locations are ref_xy + offset / n_level * ref_wh / 2 (RT-DETRv2's
    offset * num_points_scale * ref_wh * offset_scale, offset_scale .5)."""
    attn = build_module(UNEVEN, method).double()
    query, boxes, value = random_queries(SHAPES, 2, 6, 16, seed=1,
                                         dtype=torch.float64)
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(std=.3)
        got = attn(query, boxes, value, SHAPES)

        num_batch, num_query, _ = query.shape
        offsets = attn.sampling_offsets(query).view(num_batch, num_query, 4,
                                                    sum(UNEVEN), 2)
        weights = attn.attention_weights(query).view(num_batch, num_query, 4,
                                                     sum(UNEVEN))
        divisors = torch.tensor(
            [n for n in UNEVEN for _ in range(n)], dtype=torch.float64)
        locations = (
            boxes[:, :, None, None, :2] + offsets / divisors[:, None] *
            boxes[:, :, None, None, 2:] / 2)
        values = attn.value_proj(value).view(num_batch, -1, 4, 4)
        expected = attn.output_proj(
            slow_attn(values, SHAPES, locations, weights.softmax(-1), UNEVEN,
                      method == 'discrete'))
    assert got.shape == (num_batch, num_query, 16)
    # float64 throughout (~1e-15); a level's points divided by another
    # level's count moves its samples and changes the output by O(1e-1).
    assert_float64_close(expected, got)


def test_discrete_module_freezes_offsets():
    attn = build_module(UNEVEN, 'discrete')
    assert attn.method == 'discrete'
    assert not any(p.requires_grad
                   for p in attn.sampling_offsets.parameters())
    query, boxes, value = random_queries(SHAPES, 2, 6, 16, seed=1)
    value.requires_grad_()
    attn(query, boxes, value, SHAPES).square().sum().backward()
    assert value.grad.abs().sum() > 0
    assert attn.sampling_offsets.weight.grad is None
    for linear in (attn.attention_weights, attn.value_proj,
                   attn.output_proj):
        assert linear.weight.grad.abs().sum() > 0
    # init_weights (which the decoder calls again) keeps them frozen.
    attn.init_weights()
    assert not attn.sampling_offsets.weight.requires_grad


def test_module_rejects_bad_options():
    with pytest.raises(ValueError, match='one count for each of the 3'):
        build_module([4, 4])
    with pytest.raises(ValueError, match='one count for each of the 3'):
        build_module([4, 4, 4, 4])
    with pytest.raises(ValueError, match='method'):
        build_module(4, 'nearest')


def test_decoder_layer_passes_options():
    layer = RTDETRDecoderLayer(
        embed_dims=16, num_heads=4, feedforward_channels=32,
        num_points=UNEVEN, cross_attn_method='discrete')
    assert layer.cross_attn.num_points == tuple(UNEVEN)
    assert layer.cross_attn.method == 'discrete'
    default = RTDETRDecoderLayer(embed_dims=16, num_heads=4)
    assert default.cross_attn.num_points == (4, 4, 4)
    assert default.cross_attn.method == 'default'


class WithShapes(torch.nn.Module):
    """Attention with the spatial shapes fixed, for torch.export."""

    def __init__(self, attn):
        super().__init__()
        self.attn = attn

    def forward(self, query, boxes, value):
        return self.attn(query, boxes, value, SHAPES)


def test_discrete_module_exports_without_grid_sample():
    """The deployment form: no GridSample, and no host sync."""
    attn = build_module(UNEVEN, 'discrete').eval()
    inputs = random_queries(SHAPES, 1, 6, 16, seed=1)
    with torch.no_grad(), forbid_host_sync():
        expected = attn(*inputs, SHAPES)
    exported = torch.export.export(WithShapes(attn), inputs)
    ops = {str(node.target) for node in exported.graph.nodes}
    assert 'aten.gather.default' in ops
    assert not any('grid_sampler' in op for op in ops)
    with torch.no_grad():
        assert torch.equal(exported.module()(*inputs), expected)
