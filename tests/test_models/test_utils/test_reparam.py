# Copyright (c) OpenMMLab. All rights reserved.
import torch
import torch.nn.functional as F

from mmriformer.models.utils import (fold_affine_into_norm,
                                     fold_norm_affine_into_conv,
                                     scale_conv_output, scale_norm)
from mmriformer.testing import assert_float64_close

# Each fold is checked in float64 against the unfolded maths: a norm and a
# conv or two round to ~10 * eps64 (2e-15) of the output scale, well inside
# assert_float64_close's 1e-10, while a dropped term (a bias, the "- x" of
# the token mixer, a scale) changes outputs by O(1).
F64 = dict(dtype=torch.float64)


def _gn(x, gamma, beta):
    return F.group_norm(x, 1, gamma, beta, 1e-5)


def test_fold_affine_into_norm():
    torch.manual_seed(0)
    c = 8
    x = torch.randn(2, c, 5, 6, **F64)
    gamma, beta = torch.rand(c, **F64) + 0.5, torch.randn(c, **F64)
    weight, shift = torch.rand(c, 1, 1, 1, **F64) + 0.5, torch.randn(c, **F64)
    y = _gn(x, gamma, beta)
    expected = F.conv2d(y, weight, shift, groups=c) - y
    g, b = fold_affine_into_norm(gamma, beta, weight, shift)
    assert_float64_close(expected, _gn(x, g, b))


def test_scale_norm():
    torch.manual_seed(0)
    c = 4
    x = torch.randn(1, c, 3, 3, **F64)
    gamma, beta = torch.rand(c, **F64), torch.randn(c, **F64)
    ls = torch.rand(c, **F64)
    g, b = scale_norm(gamma, beta, ls)
    assert_float64_close(ls[:, None, None] * _gn(x, gamma, beta),
                         _gn(x, g, b))


def test_fold_norm_affine_into_conv():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 4, 4, **F64)
    gamma, beta = torch.rand(6, **F64) + 0.5, torch.randn(6, **F64)
    weight, bias = torch.randn(10, 6, 1, 1, **F64), torch.randn(10, **F64)
    expected = F.conv2d(gamma[:, None, None] * x + beta[:, None, None],
                        weight, bias)
    w, b = fold_norm_affine_into_conv(weight, bias, gamma, beta)
    assert_float64_close(expected, F.conv2d(x, w, b))
    w, b = fold_norm_affine_into_conv(weight, None, gamma, beta)
    assert_float64_close(expected - bias[:, None, None], F.conv2d(x, w, b))


def test_scale_conv_output():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 4, 4, **F64)
    weight, bias = torch.randn(3, 6, 1, 1, **F64), torch.randn(3, **F64)
    ls = torch.rand(3, **F64)
    w, b = scale_conv_output(weight, bias, ls)
    assert_float64_close(ls[:, None, None] * F.conv2d(x, weight, bias),
                         F.conv2d(x, w, b))
    w, b = scale_conv_output(weight, None, ls)
    assert_float64_close(ls[:, None, None] * F.conv2d(x, weight),
                         F.conv2d(x, w, b))
