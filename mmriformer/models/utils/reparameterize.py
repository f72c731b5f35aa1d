# Copyright (c) OpenMMLab. All rights reserved.
"""Structural reparameterization: folding train forms into deploy forms.

Three layers, from the bottom:

- pure tensor functions (the algebra), testable without building a model.
  Notation: a norm with per-channel affine computes ``gamma * x_hat + beta``;
  RIFormer's training-time token mixer is ``T(z) = s * z + t - z``; a layer
  scale multiplies a branch by a per-channel vector ``ls``;
- module folds built on them: a Conv(-BN) module
  (:func:`fold_conv_module`); a RIFormer block's state dict is folded with
  the checkpoint conversions, in :mod:`mmriformer.converters.riformer`;
- :func:`switch_to_deploy`, the one entry point that folds a whole model by
  asking each reparameterizable leaf module to fold itself.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_weights


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


def fold_conv_module(module: ConvModule) -> Tuple[Tensor, Tensor]:
    """The weight and bias of one conv equal to a Conv(-BN) ConvModule.

    Args:
        module (ConvModule): A conv followed by a BatchNorm or by no norm,
            with no activation.

    Returns:
        tuple[Tensor, Tensor]: Weight (C_out, C_in, kh, kw) and bias
        (C_out,), detached.
    """
    conv = module.conv
    if not module.with_norm:
        bias = conv.bias
        if bias is None:
            bias = conv.weight.new_zeros(conv.out_channels)
        return conv.weight.detach(), bias.detach()
    norm = module.norm
    if not isinstance(norm, _BatchNorm) or norm.running_mean is None:
        raise TypeError(
            f'Only a BatchNorm with running statistics can be folded into a '
            f'conv, got {norm!r}; build the block with norm_cfg='
            f'dict(type="BN") or dict(type="SyncBN").')
    weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias,
                                        norm.running_mean, norm.running_var,
                                        norm.eps, norm.weight, norm.bias)
    return weight.detach(), bias.detach()


def _folds(module: nn.Module) -> bool:
    return callable(getattr(module, 'switch_to_deploy', None))


def reparam_leaves(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """The innermost modules that fold themselves, with their names.

    These are the modules with a ``switch_to_deploy()`` method and no such
    module inside them: RIFormer blocks and patch embeddings, RepVGG blocks.
    A container's ``switch_to_deploy()`` (the RIFormer backbone's, kept for
    mmpretrain's tools) only delegates to :func:`switch_to_deploy`.

    Args:
        model (nn.Module): The model.

    Returns:
        list[tuple[str, nn.Module]]: The leaves, in ``named_modules`` order.
    """
    return [(name, module) for name, module in model.named_modules()
            if _folds(module) and not any(
                _folds(child) for child in module.modules()
                if child is not module)]


def unknown_keys_of_leaves(model: nn.Module, keys: List[str],
                           deploy: bool) -> List[str]:
    """``keys`` (relative to ``model``) that fall inside a reparameterizable
    module in the given form under a name that module does not have (e.g.
    ``norm_reparam`` in a train-form RIFormer block): weights of the other
    form.

    Args:
        model (nn.Module): The model.
        keys (list[str]): State-dict keys, relative to ``model``.
        deploy (bool): Look inside modules in deploy (True) or train form.

    Returns:
        list[str]: The keys found.
    """
    found = []
    for name, leaf in reparam_leaves(model):
        if bool(getattr(leaf, 'deploy', False)) != deploy:
            continue
        prefix = name + '.'
        names = set(leaf._modules) | set(leaf._parameters) | set(
            leaf._buffers)
        found += [k for k in keys if k.startswith(prefix)
                  and k[len(prefix):].split('.')[0] not in names]
    return found


def switch_to_deploy(model: nn.Module) -> nn.Module:
    """Fold every reparameterizable module of ``model`` into deploy form.

    Works on any model (a bare backbone, an mmdet detector, an mmpretrain
    classifier): each leaf of :func:`reparam_leaves` folds itself, and
    leaves already in deploy form stay as they are. Eval-mode outputs stay
    the same up to float rounding; frozen parameters stay frozen.

    Args:
        model (nn.Module): The model, changed in place.

    Returns:
        nn.Module: The same model, for chaining.
    """
    for _, leaf in reparam_leaves(model):
        leaf.switch_to_deploy()
    return model
