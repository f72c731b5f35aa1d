# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional

import torch.nn.functional as F
from mmdet.models.losses.utils import weighted_loss
from mmdet.registry import MODELS
from torch import Tensor, nn

from ..utils.precision import at_least_float32


@weighted_loss
def fine_grained_localization_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Two-neighbour soft-label cross entropy of edge distributions.

    A target at bin position ``i + r`` (``0 <= r <= 1``) is the soft label
    ``1 - r`` on bin ``i`` and ``r`` on bin ``i + 1``::

        loss = (1 - r) * CE(pred, i) + r * CE(pred, i + 1)

    This is mmdet's ``distribution_focal_loss``, except that the target
    may be ``reg_max`` itself (all mass on the last bin), which D-FINE
    gives to offsets at or beyond the end of W. Wrapped by mmdet's
    ``weighted_loss``: it also takes ``weight`` (N, ), ``reduction``
    (default ``'mean'``) and ``avg_factor``.

    Args:
        pred (Tensor): Logits of the edge distributions, (N, reg_max + 1).
        target (Tensor): Bin positions in [0, reg_max], (N, ), from
            :func:`~mmriformer.models.utils.distance_to_bins`.

    Returns:
        Tensor: Loss of shape (N, ) before the wrapper's reduction.
    """
    if pred.dim() != 2 or target.shape != pred.shape[:1]:
        raise ValueError(
            f'pred must be (N, reg_max + 1) and target (N, ), got pred '
            f'{tuple(pred.shape)} and target {tuple(target.shape)}')
    pred = at_least_float32(pred)
    target = target.detach().to(pred)
    reg_max = pred.shape[1] - 1
    left = target.long().clamp(max=reg_max - 1)
    weight_right = target - left
    return F.cross_entropy(pred, left, reduction='none') * \
        (1 - weight_right) + \
        F.cross_entropy(pred, left + 1, reduction='none') * weight_right


@MODELS.register_module()
class FineGrainedLocalizationLoss(nn.Module):
    """Fine-Grained Localization (FGL) loss of D-FINE (ICLR 2025).

    The edge distributions of the matched queries learn the two-neighbour
    soft label of their gt edge offsets on the grid W (see
    :func:`fine_grained_localization_loss`). D-FINE weights each query's
    four edges by the IoU of its predicted box with its gt box and
    averages over the number of gt boxes: pass that IoU, repeated per
    edge, as ``weight`` and ``avg_factor=num_boxes``.

    D-FINE's configs weight it 0.15, and so do DEIM-D-FINE's (``loss_fgl``
    0.15 beside ``loss_ddf`` 1.5) and HF transformers' ``DFineConfig``.

    Args:
        reduction (str): One of ``'none'``, ``'mean'`` and ``'sum'``.
            Defaults to ``'mean'``.
        loss_weight (float): Weight of the loss. Defaults to 0.15.
    """

    def __init__(self,
                 reduction: str = 'mean',
                 loss_weight: float = 0.15) -> None:
        super().__init__()
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Weighted, reduced FGL.

        Args:
            pred (Tensor): Logits of the edge distributions of the matched
                queries, (N, reg_max + 1), N = 4 * matched queries.
            target (Tensor): Bin positions of the gt edge offsets in
                [0, reg_max], (N, ).
            weight (Tensor, optional): Weight of each edge, (N, ); D-FINE's
                is its query's IoU with its gt box. Defaults to None.
            avg_factor (float, optional): Divisor of the sum for
                ``'mean'``; D-FINE's is the number of gt boxes. Defaults
                to None.
            reduction_override (str, optional): Replaces the reduction.
                Defaults to None.

        Returns:
            Tensor: The loss, scalar unless the reduction is ``'none'``.
        """
        reduction = reduction_override or self.reduction
        return self.loss_weight * fine_grained_localization_loss(
            pred, target, weight, reduction=reduction, avg_factor=avg_factor)
