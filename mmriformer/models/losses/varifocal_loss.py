# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional

import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from .iou_aware_loss import IoUAwareClassificationLoss


def varifocal_loss(pred: Tensor,
                   target: Tensor,
                   alpha: float = 0.75,
                   gamma: float = 2.0,
                   positive: Optional[Tensor] = None) -> Tensor:
    """Elementwise varifocal loss as RT-DETR computes it.

    With ``p = sigmoid(pred)`` and ``onehot = positive``::

        w = alpha * p.detach() ** gamma * (1 - onehot) + target
        loss = w * BCE_with_logits(pred, target)

    Positive slots are weighted by their IoU target and negative slots by
    the focal term. Unlike mmdet's ``varifocal_loss``, no gradient flows
    through the weight.

    Args:
        pred (Tensor): Classification logits of shape (N, C).
        target (Tensor): IoU-valued soft one-hot targets of shape (N, C):
            the IoU of the matched box at its gt class and 0 elsewhere.
        alpha (float): Weight of the negative slots. Defaults to 0.75.
        gamma (float): Focusing exponent of the negative slots.
            Defaults to 2.0.
        positive (Tensor, optional): Boolean mask of shape (N, C) marking
            the matched class slots. A matched slot whose IoU is 0 then
            gets weight 0, as in RT-DETR. Defaults to None, which means
            ``target > 0``.

    Returns:
        Tensor: Elementwise loss of shape (N, C).
    """
    if pred.shape != target.shape:
        raise ValueError(f'pred and target must have the same shape, got '
                         f'pred {tuple(pred.shape)} and target '
                         f'{tuple(target.shape)}')
    if positive is None:
        positive = target > 0
    elif positive.shape != pred.shape:
        raise ValueError(f'positive must have the shape of pred '
                         f'{tuple(pred.shape)}, got {tuple(positive.shape)}')
    target = target.type_as(pred)
    negative = (~positive.bool()).type_as(pred)
    weight = alpha * pred.detach().sigmoid().pow(gamma) * negative + target
    return F.binary_cross_entropy_with_logits(
        pred, target, reduction='none') * weight


@MODELS.register_module()
class RTDETRVarifocalLoss(IoUAwareClassificationLoss):
    """Varifocal loss of RT-DETR, with a detached weight.

    See :func:`varifocal_loss` for the formula. RT-DETR normalises the sum
    by the number of gt boxes, which is ``reduction='mean'`` with
    ``avg_factor=num_boxes`` here. In :meth:`forward`, ``positive`` defaults
    to ``target > 0``.

    Args:
        use_sigmoid (bool): Must be True; only the sigmoid form exists.
            DETR heads read it to size the classifier. Defaults to True.
        alpha (float): Weight of the negative slots. Defaults to 0.75.
        gamma (float): Focusing exponent of the negative slots.
            Defaults to 2.0.
        reduction (str): One of ``'none'``, ``'mean'`` and ``'sum'``.
            Defaults to ``'mean'``.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 use_sigmoid: bool = True,
                 alpha: float = 0.75,
                 gamma: float = 2.0,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__(use_sigmoid, alpha, gamma, reduction, loss_weight)

    def elementwise(self, pred: Tensor, target: Tensor,
                    positive: Optional[Tensor]) -> Tensor:
        """See :func:`varifocal_loss`."""
        return varifocal_loss(pred, target, self.alpha, self.gamma, positive)
