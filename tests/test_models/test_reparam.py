# Copyright (c) OpenMMLab. All rights reserved.
import torch
import torch.nn.functional as F

from mmriformer.models.utils import (fold_affine_into_norm,
                                     fold_norm_affine_into_conv,
                                     scale_conv_output, scale_norm)


def _gn(x, gamma, beta):
    return F.group_norm(x, 1, gamma, beta, 1e-5)


def test_fold_affine_into_norm():
    torch.manual_seed(0)
    c = 8
    x = torch.randn(2, c, 5, 6)
    gamma, beta = torch.rand(c) + 0.5, torch.randn(c)
    weight, shift = torch.rand(c, 1, 1, 1) + 0.5, torch.randn(c)
    y = _gn(x, gamma, beta)
    expected = F.conv2d(y, weight, shift, groups=c) - y
    g, b = fold_affine_into_norm(gamma, beta, weight, shift)
    torch.testing.assert_close(_gn(x, g, b), expected, rtol=1e-5, atol=1e-5)


def test_scale_norm():
    torch.manual_seed(0)
    c = 4
    x = torch.randn(1, c, 3, 3)
    gamma, beta, ls = torch.rand(c), torch.randn(c), torch.rand(c)
    g, b = scale_norm(gamma, beta, ls)
    torch.testing.assert_close(
        _gn(x, g, b), ls[:, None, None] * _gn(x, gamma, beta))


def test_fold_norm_affine_into_conv():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 4, 4)
    gamma, beta = torch.rand(6) + 0.5, torch.randn(6)
    weight, bias = torch.randn(10, 6, 1, 1), torch.randn(10)
    expected = F.conv2d(gamma[:, None, None] * x + beta[:, None, None],
                        weight, bias)
    w, b = fold_norm_affine_into_conv(weight, bias, gamma, beta)
    torch.testing.assert_close(F.conv2d(x, w, b), expected, rtol=1e-5,
                               atol=1e-5)
    w, b = fold_norm_affine_into_conv(weight, None, gamma, beta)
    torch.testing.assert_close(
        F.conv2d(x, w, b), expected - bias[:, None, None], rtol=1e-5,
        atol=1e-5)


def test_scale_conv_output():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 4, 4)
    weight, bias, ls = torch.randn(3, 6, 1, 1), torch.randn(3), torch.rand(3)
    w, b = scale_conv_output(weight, bias, ls)
    torch.testing.assert_close(
        F.conv2d(x, w, b), ls[:, None, None] * F.conv2d(x, weight, bias))
    w, b = scale_conv_output(weight, None, ls)
    torch.testing.assert_close(
        F.conv2d(x, w, b), ls[:, None, None] * F.conv2d(x, weight))
