# Copyright (c) OpenMMLab. All rights reserved.
"""D-FINE's weighting function, integral, edge offsets and bin positions
against hand computation in float64 (against HF's D-FINE executed: see
tests/test_models/test_losses/test_dfine_loss_parity.py)."""
import math

import pytest
import torch

from mmriformer.models.utils import (box_to_distance, distance_to_bins,
                                     distance_to_box, distribution_integral,
                                     weighting_function)
from mmriformer.testing import assert_float64_close

F64 = torch.float64
# A few float64 roundings of values up to 4; a wrong step, bound or scale
# is off by 1e-2 or more.
TOL = 1e-14


def w32():
    """D-FINE's W: reg_max 32, up 0.5, reg_scale 4, in float64."""
    return weighting_function(32, torch.tensor([0.5], dtype=F64),
                              torch.tensor([4.0], dtype=F64))


def test_weighting_function_by_hand():
    # a = 0.5 * 4 = 2; reg_max 4: step (a + 1) ** (2 / 2) = 3.
    assert torch.equal(weighting_function(4, 0.5, 4.0),
                       torch.tensor([-4., -2., 0., 2., 4.]))
    # reg_max 6: step 3 ** (1 / 2).
    root3 = math.sqrt(3)
    expected = torch.tensor(
        [-4, -2, -(root3 - 1), 0, root3 - 1, 2, 4], dtype=F64)
    assert_float64_close(
        expected,
        weighting_function(6, torch.tensor([0.5], dtype=F64), 4.0), TOL)
    # Only |up * reg_scale| counts.
    assert torch.equal(
        weighting_function(6, torch.tensor([-0.5], dtype=F64), 4.0),
        weighting_function(6, torch.tensor([0.5], dtype=F64), -4.0))


def test_weighting_function_shape_of_dfine():
    project = w32()
    assert project.shape == (33, ) and project.dtype == F64
    # Zero in the middle, symmetric, increasing, inner values up to
    # a = 2 and the end bins at 2a.
    assert project[16] == 0
    assert torch.equal(project, -project.flip(0))
    assert (project.diff() > 0).all()
    assert project[31].item() == pytest.approx(2, abs=TOL)
    assert project[32] == 4 and project[0] == -4
    # Geometric inner steps: W(16 + i) + 1 = 3 ** (i / 15).
    inner = torch.arange(1, 16, dtype=F64)
    assert_float64_close(3**(inner / 15), project[17:32] + 1, TOL)
    # reg_scale 8 (D-FINE-X) doubles a.
    assert weighting_function(32, 0.5, 8.0)[32] == 8


@pytest.mark.parametrize('reg_max', [2, 7, 0])
def test_weighting_function_rejects_bad_reg_max(reg_max):
    with pytest.raises(ValueError, match='even and at least 4'):
        weighting_function(reg_max, 0.5, 4.0)


def test_integral_by_hand():
    project = w32()
    logits = torch.full((2, 4, 33), -math.inf, dtype=F64)
    # Edge 0: all mass on one bin gives its W.
    logits[:, 0, 20] = 0
    # Edge 1: 1/4 on bin 3, 3/4 on bin 30.
    logits[:, 1, 3], logits[:, 1, 30] = math.log(0.25), math.log(0.75)
    # Edge 2: uniform gives the mean of a symmetric W, 0.
    logits[:, 2] = 1.5
    # Edge 3: half on each end.
    logits[:, 3, 0] = logits[:, 3, 32] = 7.
    got = distribution_integral(logits.flatten(-2), project)
    expected = torch.tensor([
        project[20], 0.25 * project[3] + 0.75 * project[30], 0, 0
    ], dtype=F64).expand(2, 4)
    assert got.shape == (2, 4) and got.dtype == F64
    assert torch.allclose(got, expected, rtol=0, atol=TOL)


def test_integral_rejects_wrong_width():
    with pytest.raises(ValueError, match=r'4 \* \(reg_max \+ 1\) = 132'):
        distribution_integral(torch.zeros(3, 4 * 32), w32())


def test_distance_to_box_by_hand():
    # Reference (cx, cy, w, h) = (0.5, 0.4, 0.2, 0.4); reg_scale 4 makes a
    # unit offset a quarter of the side.
    points = torch.tensor([[0.5, 0.4, 0.2, 0.4]], dtype=F64)
    assert_float64_close(
        points, distance_to_box(points, torch.zeros(1, 4, dtype=F64), 4.0),
        TOL)
    # Left edge out by 4 units (one width), bottom in by 1 unit (h / 4):
    # x1 = 0.4 - 0.2, y2 = 0.6 - 0.1.
    distance = torch.tensor([[4., 0., 0., -1.]], dtype=F64)
    expected = torch.tensor([[0.4, 0.35, 0.4, 0.3]], dtype=F64)
    assert_float64_close(expected, distance_to_box(points, distance, 4.0),
                         TOL)
    # Batched shapes and reg_scale as D-FINE's (1, ) parameter, of either
    # sign.
    points = points.expand(2, 3, 4)
    for scale in (torch.tensor([4.0], dtype=F64), -4.0):
        assert_float64_close(
            expected.expand(2, 3, 4),
            distance_to_box(points, distance.expand(2, 3, 4), scale), TOL)


def test_box_to_distance_inverts_distance_to_box():
    gen = torch.Generator().manual_seed(0)
    points = torch.cat([
        torch.rand(5, 6, 2, generator=gen, dtype=F64),
        torch.rand(5, 6, 2, generator=gen, dtype=F64) * 0.5 + 0.01
    ], -1)
    distance = torch.randn(5, 6, 4, generator=gen, dtype=F64) * 3
    boxes = distance_to_box(points, distance, 4.0)
    xyxy = torch.cat([boxes[..., :2] - boxes[..., 2:] / 2,
                      boxes[..., :2] + boxes[..., 2:] / 2], -1)
    assert_float64_close(distance, box_to_distance(points, xyxy, 4.0))
    # Not clamped to W's range.
    assert box_to_distance(points, xyxy, 4.0).abs().max() > 4


def test_distance_to_bins_by_hand():
    project = w32()
    between = project[10] + 0.25 * (project[11] - project[10])
    distance = torch.stack([
        project[0] - 1,   # before W: all on bin 0
        project[0],       # W's start: bin 0
        project[16],      # an integer bin: 16, nothing on 17
        project[5],
        between,          # a quarter of the way from bin 10 to 11
        (project[31] + project[32]) / 2,
        project[32],      # W's end: all on bin 32
        project[32] + 5,  # beyond W: all on bin 32
    ]).reshape(2, 4)
    got = distance_to_bins(distance, project)
    expected = torch.tensor(
        [[0, 0, 16, 5], [10.25, 31.5, 32, 32]], dtype=F64)
    assert got.dtype == F64 and got.shape == (2, 4)
    assert torch.allclose(got, expected, rtol=0, atol=TOL)
    # The two-neighbour soft label integrates back to the offset inside W.
    inside = distance.reshape(-1)[1:7]
    position = got.reshape(-1)[1:7]
    left = position.long().clamp(max=31)
    right_weight = position - left
    integral = (1 - right_weight) * project[left] + \
        right_weight * project[left + 1]
    assert torch.allclose(integral, inside, rtol=0, atol=TOL)


def test_offsets_of_a_gt_box_by_hand():
    # A gt box twice the reference's size with the same centre: every edge
    # is half a side further out, i.e. 2 units at reg_scale 4; 3.5 times
    # the size puts the edges at 5 units, beyond W's end of 4. D-FINE's
    # guard adds 1e-16 to the unit (h / 4 = 0.025): 4e-15 relative, 2e-14
    # on the offset and 1e-13 on the position (bins 31 to 32 are 0.21 apart).
    points = torch.tensor([[0.5, 0.5, 0.2, 0.1]], dtype=F64)
    for scale, offset, position in ((2., 2., 31.), (3.5, 5., 32.)):
        half = points[:, 2:] * scale / 2
        gt = torch.cat([points[:, :2] - half, points[:, :2] + half], -1)
        distance = box_to_distance(points, gt, 4.0)
        assert torch.allclose(distance, torch.full_like(distance, offset),
                              rtol=0, atol=10 * TOL)
        assert torch.allclose(distance_to_bins(distance, w32()),
                              torch.full_like(distance, position), rtol=0,
                              atol=100 * TOL)
