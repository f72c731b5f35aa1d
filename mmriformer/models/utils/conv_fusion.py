# Copyright (c) OpenMMLab. All rights reserved.
"""Tensor algebra for folding conv + BatchNorm branches into one conv.

Pure functions, so the re-parameterisation of RepVGG-style blocks can be
tested without building a model.
"""
from typing import Optional, Tuple

import torch.nn.functional as F
from torch import Tensor


def fuse_conv_bn(weight: Tensor, bias: Optional[Tensor], running_mean: Tensor,
                 running_var: Tensor, gamma: Optional[Tensor],
                 beta: Optional[Tensor], eps: float) -> Tuple[Tensor, Tensor]:
    """Fold an inference-mode BatchNorm into the conv in front of it.

    ``BN(W * x + b) = (s W) * x + (s (b - mean) + beta)`` with
    ``s = gamma / sqrt(var + eps)``, exactly.

    Args:
        weight (Tensor): Conv weight, shape (C_out, C_in, kh, kw).
        bias (Tensor, optional): Conv bias, shape (C_out,).
        running_mean (Tensor): BN running mean, shape (C_out,).
        running_var (Tensor): BN running variance, shape (C_out,).
        gamma (Tensor, optional): BN weight, shape (C_out,); None for a BN
            without affine.
        beta (Tensor, optional): BN bias, shape (C_out,); None for a BN
            without affine.
        eps (float): BN epsilon.

    Returns:
        tuple[Tensor, Tensor]: The fused weight (C_out, C_in, kh, kw) and
        bias (C_out,).
    """
    scale = (running_var + eps).rsqrt()
    if gamma is not None:
        scale = scale * gamma
    shift = -running_mean if bias is None else bias - running_mean
    new_bias = shift * scale
    if beta is not None:
        new_bias = new_bias + beta
    return weight * scale.reshape(-1, 1, 1, 1), new_bias


def pad_1x1_to_3x3(weight: Tensor) -> Tensor:
    """Zero-pad a 1x1 kernel to the 3x3 kernel with the same output.

    A 1x1 conv without padding equals this 3x3 conv with padding 1 (same
    stride), so the two kernels of a RepVGG block can be summed.

    Args:
        weight (Tensor): Conv weight, shape (C_out, C_in, 1, 1).

    Returns:
        Tensor: The weight of shape (C_out, C_in, 3, 3), zero except at the
        centre.
    """
    if weight.shape[-2:] != (1, 1):
        raise ValueError(f'pad_1x1_to_3x3 expects a 1x1 kernel, got weight '
                         f'of shape {tuple(weight.shape)}')
    return F.pad(weight, [1, 1, 1, 1])
