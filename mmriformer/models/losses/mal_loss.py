# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional

import torch.nn.functional as F
from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS
from torch import Tensor, nn


def matchability_aware_loss(pred: Tensor,
                            target: Tensor,
                            positive: Tensor,
                            alpha: float = 1.0,
                            gamma: float = 1.5) -> Tensor:
    """Elementwise Matchability-Aware Loss (MAL) of DEIM.

    With ``p = sigmoid(pred)``, ``q = target ** gamma`` (the IoU of the
    matched box raised to ``gamma`` at matched slots, 0 elsewhere) and
    ``m = positive``::

        w = alpha * p.detach() ** gamma * (1 - m) + m
        loss = w * BCE_with_logits(pred, q)
             = -m * (q * log(p) + (1 - q) * log(1 - p))
               - (1 - m) * alpha * p ** gamma * log(1 - p)

    Unlike varifocal loss, a matched slot has weight 1 whatever its IoU, so
    a matched query whose box misses the gt (IoU 0) is pushed towards score
    0 instead of being ignored; a low-IoU match gets a target of
    ``IoU ** gamma`` instead of a weight that vanishes with the IoU. No
    gradient flows through ``w`` or ``q``.

    Args:
        pred (Tensor): Classification logits of shape (N, C).
        target (Tensor): IoU-valued soft one-hot of shape (N, C): the IoU
            of the matched box at its gt class and 0 elsewhere. The IoU is
            raised to ``gamma`` here.
        positive (Tensor): Boolean mask of shape (N, C) marking the matched
            class slots, which also tells a matched slot of IoU 0 from a
            negative one.
        alpha (float): Weight of the negative slots; DEIM's ``mal_alpha``,
            where ``None`` means 1. Defaults to 1.0.
        gamma (float): Exponent of both the IoU target and the focal term
            of the negative slots. Must be positive. Defaults to 1.5.

    Returns:
        Tensor: Elementwise loss of shape (N, C).
    """
    if pred.shape != target.shape or pred.shape != positive.shape:
        raise ValueError(
            f'pred, target and positive must have the same shape, got pred '
            f'{tuple(pred.shape)}, target {tuple(target.shape)} and positive '
            f'{tuple(positive.shape)}')
    if gamma <= 0:
        raise ValueError(f'gamma must be positive, got {gamma}: with 0, '
                         f'every slot would get the target IoU ** 0 = 1')
    positive = positive.bool().type_as(pred)
    score = target.detach().type_as(pred).pow(gamma) * positive
    weight = alpha * pred.detach().sigmoid().pow(gamma) * (1 - positive) + \
        positive
    return F.binary_cross_entropy_with_logits(
        pred, score, reduction='none') * weight


@MODELS.register_module()
class MatchabilityAwareLoss(nn.Module):
    """Matchability-Aware Loss of DEIM (CVPR 2025), a replacement for
    RT-DETR's varifocal loss.

    See :func:`matchability_aware_loss` for the formula. DEIM normalises the
    sum by the number of gt boxes, which is ``reduction='mean'`` with
    ``avg_factor=num_boxes`` here. DEIM's RT-DETRv2 configs use
    ``gamma=1.5``, no ``mal_alpha`` (``alpha=1.0``) and loss weight 1.

    The loss needs the matched class slots (``positive``) and the IoU of
    each matched box, which :class:`RTDETRHead` passes; heads that pass
    class labels cannot use it.

    Args:
        use_sigmoid (bool): Must be True; only the sigmoid form exists.
            DETR heads read it to size the classifier. Defaults to True.
        alpha (float): Weight of the negative slots. Defaults to 1.0.
        gamma (float): Exponent of the IoU target and of the negative
            slots' focal term. Defaults to 1.5.
        reduction (str): One of ``'none'``, ``'mean'`` and ``'sum'``.
            Defaults to ``'mean'``.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 use_sigmoid: bool = True,
                 alpha: float = 1.0,
                 gamma: float = 1.5,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if not use_sigmoid:
            raise ValueError(
                'MatchabilityAwareLoss only supports use_sigmoid=True')
        if gamma <= 0:
            raise ValueError(f'MatchabilityAwareLoss needs gamma > 0, got '
                             f'{gamma}; DEIM uses 1.5')
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f'Unknown reduction {reduction!r}')
        self.use_sigmoid = use_sigmoid
        self.alpha = alpha
        self.gamma = gamma
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                positive: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): Classification logits of shape (N, C).
            target (Tensor): IoU-valued soft one-hot targets of shape
                (N, C).
            weight (Tensor, optional): Elementwise weight of shape (N, C),
                or per-sample weight of shape (N, ). Defaults to None.
            avg_factor (float, optional): With ``reduction='mean'``, the
                loss sum is divided by it instead of the element count.
                Defaults to None.
            reduction_override (str, optional): Overrides
                ``self.reduction``. Defaults to None.
            positive (Tensor): Boolean mask of shape (N, C) of the matched
                class slots; required (None is refused with an error).

        Returns:
            Tensor: The loss, a scalar unless the reduction is ``'none'``,
            in which case its shape is (N, C).
        """
        if positive is None:
            raise ValueError(
                'MatchabilityAwareLoss needs positive, the mask of matched '
                'class slots, and an IoU-valued target; use it as loss_cls '
                'of RTDETRHead, which passes both')
        if reduction_override not in (None, 'none', 'mean', 'sum'):
            raise ValueError(f'Unknown reduction {reduction_override!r}')
        reduction = reduction_override or self.reduction
        if weight is not None and weight.dim() == 1 and pred.dim() == 2:
            # Per-sample weights, like the label weights of DETR heads.
            weight = weight[:, None]
        loss = matchability_aware_loss(pred, target, positive, self.alpha,
                                       self.gamma)
        loss = weight_reduce_loss(loss, weight, reduction, avg_factor)
        return self.loss_weight * loss
