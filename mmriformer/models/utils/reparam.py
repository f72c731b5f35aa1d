# Copyright (c) OpenMMLab. All rights reserved.
"""The algebra of RIFormer's structural re-parameterisation.

Pure tensor functions, so the folding can be tested without building a model.
Notation: a norm with per-channel affine computes ``gamma * x_hat + beta``;
the training-time token mixer is ``T(z) = s * z + t - z``; a layer scale
multiplies a branch by a per-channel vector ``ls``.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor


def fold_affine_into_norm(gamma: Tensor, beta: Tensor, scale: Tensor,
                          shift: Tensor) -> Tuple[Tensor, Tensor]:
    """Fold the token mixer ``T(z) = scale * z + shift - z`` into a norm.

    ``T(gamma * x_hat + beta) = gamma' * x_hat + beta'``, exactly.

    Args:
        gamma (Tensor): Norm weight, shape (C,).
        beta (Tensor): Norm bias, shape (C,).
        scale (Tensor): Affine scale, shape (C,) or the depth-wise conv
            weight of shape (C, 1, 1, 1).
        shift (Tensor): Affine shift, shape (C,).

    Returns:
        tuple[Tensor, Tensor]: ``gamma'`` and ``beta'``, each of shape (C,).
    """
    scale = scale.reshape(-1) - 1
    return gamma * scale, beta * scale + shift


def scale_norm(gamma: Tensor, beta: Tensor,
               layer_scale: Tensor) -> Tuple[Tensor, Tensor]:
    """Fold a per-channel layer scale applied after a norm into the norm.

    Args:
        gamma (Tensor): Norm weight, shape (C,).
        beta (Tensor): Norm bias, shape (C,).
        layer_scale (Tensor): Layer scale, shape (C,).

    Returns:
        tuple[Tensor, Tensor]: The scaled weight and bias, shape (C,).
    """
    return gamma * layer_scale, beta * layer_scale


def fold_norm_affine_into_conv(
        weight: Tensor, bias: Optional[Tensor], gamma: Tensor,
        beta: Tensor) -> Tuple[Tensor, Tensor]:
    """Fold a norm's per-channel affine into the 1x1 conv that follows it.

    ``W (gamma * x_hat + beta) + b = (W diag(gamma)) x_hat + (W beta + b)``.

    Args:
        weight (Tensor): Conv weight, shape (C_out, C_in, 1, 1).
        bias (Tensor, optional): Conv bias, shape (C_out,).
        gamma (Tensor): Norm weight, shape (C_in,).
        beta (Tensor): Norm bias, shape (C_in,).

    Returns:
        tuple[Tensor, Tensor]: The folded weight (C_out, C_in, 1, 1) and
        bias (C_out,).
    """
    matrix = weight.reshape(weight.shape[0], -1)
    new_bias = matrix @ beta
    if bias is not None:
        new_bias = new_bias + bias
    return weight * gamma.reshape(1, -1, 1, 1), new_bias


def scale_conv_output(weight: Tensor, bias: Optional[Tensor],
                      layer_scale: Tensor) -> Tuple[Tensor, Tensor]:
    """Fold a per-channel layer scale applied after a conv into the conv.

    Args:
        weight (Tensor): Conv weight, shape (C_out, C_in, kh, kw).
        bias (Tensor, optional): Conv bias, shape (C_out,).
        layer_scale (Tensor): Layer scale, shape (C_out,).

    Returns:
        tuple[Tensor, Tensor]: The scaled weight and bias.
    """
    if bias is None:
        bias = torch.zeros_like(layer_scale)
    return weight * layer_scale.reshape(-1, 1, 1, 1), bias * layer_scale
