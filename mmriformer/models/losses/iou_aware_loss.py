# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional

from mmdet.models.losses.utils import weight_reduce_loss
from torch import Tensor, nn


class IoUAwareClassificationLoss(nn.Module):
    """Base of the sigmoid class losses whose target is IoU-valued.

    :class:`RTDETRHead` passes such a loss the IoU of each matched box at
    its gt class (0 elsewhere) and the mask of the matched class slots,
    instead of class labels. Subclasses define :meth:`elementwise`; this
    class checks the settings and applies weights, reduction and
    ``loss_weight``.

    Args:
        use_sigmoid (bool): Must be True; only the sigmoid form exists.
            DETR heads read it to size the classifier.
        alpha (float): Weight of the negative slots.
        gamma (float): Focusing exponent.
        reduction (str): One of ``'none'``, ``'mean'`` and ``'sum'``.
        loss_weight (float): Weight of the loss.
    """

    def __init__(self, use_sigmoid: bool, alpha: float, gamma: float,
                 reduction: str, loss_weight: float) -> None:
        super().__init__()
        if not use_sigmoid:
            raise ValueError(
                f'{type(self).__name__} only supports use_sigmoid=True')
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f'Unknown reduction {reduction!r}')
        self.use_sigmoid = use_sigmoid
        self.alpha = alpha
        self.gamma = gamma
        self.reduction = reduction
        self.loss_weight = loss_weight

    def elementwise(self, pred: Tensor, target: Tensor,
                    positive: Optional[Tensor]) -> Tensor:
        """The unreduced loss, of the shape of ``pred``."""
        raise NotImplementedError

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
                (N, C): the IoU of the matched box at its gt class and 0
                elsewhere.
            weight (Tensor, optional): Elementwise weight of shape (N, C),
                or per-sample weight of shape (N, ). Defaults to None.
            avg_factor (float, optional): With ``reduction='mean'``, the
                loss sum is divided by it instead of the element count.
                Defaults to None.
            reduction_override (str, optional): Overrides
                ``self.reduction``. Defaults to None.
            positive (Tensor, optional): Boolean mask of shape (N, C) of
                the matched class slots; see the subclass for what None
                means. Defaults to None.

        Returns:
            Tensor: The loss, a scalar unless the reduction is ``'none'``,
            in which case its shape is (N, C).
        """
        if reduction_override not in (None, 'none', 'mean', 'sum'):
            raise ValueError(f'Unknown reduction {reduction_override!r}')
        reduction = reduction_override or self.reduction
        if weight is not None and weight.dim() == 1 and pred.dim() == 2:
            # Per-sample weights, like the label weights of DETR heads.
            weight = weight[:, None]
        loss = self.elementwise(pred, target, positive)
        loss = weight_reduce_loss(loss, weight, reduction, avg_factor)
        return self.loss_weight * loss
