# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional

import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from .iou_aware_loss import IoUAwareClassificationLoss


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
        raise ValueError(f'gamma must be positive, got {gamma}: at 0 the '
                         f'target no longer depends on the IoU')
    positive = positive.bool().type_as(pred)
    score = target.detach().type_as(pred).pow(gamma) * positive
    weight = alpha * pred.detach().sigmoid().pow(gamma) * (1 - positive) + \
        positive
    return F.binary_cross_entropy_with_logits(
        pred, score, reduction='none') * weight


@MODELS.register_module()
class MatchabilityAwareLoss(IoUAwareClassificationLoss):
    """Matchability-Aware Loss of DEIM (CVPR 2025), a replacement for
    RT-DETR's varifocal loss.

    See :func:`matchability_aware_loss` for the formula. DEIM normalises the
    sum by the number of gt boxes, which is ``reduction='mean'`` with
    ``avg_factor=num_boxes`` here. DEIM's RT-DETRv2 configs use
    ``gamma=1.5``, no ``mal_alpha`` (``alpha=1.0``) and loss weight 1.

    :meth:`forward` needs ``positive``, the matched class slots, and an
    IoU-valued target, which :class:`RTDETRHead` passes; heads that pass
    class labels cannot use it.

    Args:
        use_sigmoid (bool): Must be True; only the sigmoid form exists.
            DETR heads read it to size the classifier. Defaults to True.
        alpha (float): Weight of the negative slots. Defaults to 1.0.
        gamma (float): Exponent of the IoU target and of the negative
            slots' focal term; must be positive. Defaults to 1.5.
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
        if gamma <= 0:
            raise ValueError(f'MatchabilityAwareLoss needs gamma > 0, got '
                             f'{gamma}: at 0 the target no longer depends on '
                             f'the IoU; DEIM uses 1.5')
        super().__init__(use_sigmoid, alpha, gamma, reduction, loss_weight)

    def elementwise(self, pred: Tensor, target: Tensor,
                    positive: Optional[Tensor]) -> Tensor:
        """See :func:`matchability_aware_loss`; ``positive`` is required."""
        if positive is None:
            raise ValueError(
                'MatchabilityAwareLoss needs positive, the mask of matched '
                'class slots, and an IoU-valued target; use it as loss_cls '
                'of RTDETRHead, which passes both')
        return matchability_aware_loss(pred, target, positive, self.alpha,
                                       self.gamma)
