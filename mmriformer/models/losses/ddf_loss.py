# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional, Tuple

import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from ..utils.precision import at_least_float32


@MODELS.register_module()
class DecoupledDistillationFocalLoss(nn.Module):
    """Decoupled Distillation Focal (DDF) loss of D-FINE (ICLR 2025).

    The last decoder layer's edge distributions teach an earlier layer's
    (GO-LSD). Per edge, with temperature ``T`` and weight ``w``::

        l = w * T ** 2 * KL(softmax(teacher / T) || softmax(pred / T))

    The edges of matched and of unmatched queries are averaged apart and
    the two means combined by the square roots of their counts::

        loss = (sqrt(P) * mean_matched(l) + sqrt(U) * mean_unmatched(l))
               / (sqrt(P) + sqrt(U))

    with P matched and U unmatched edges (D-FINE scales both counts by
    ``8 / batch size`` first, which cancels). A group without edges adds
    nothing; without any edge the loss is 0.

    D-FINE's weights: for a matched query, the IoU of this layer's box with
    its gt box; for an unmatched one, the teacher's highest class score
    (sigmoid of the last layer's logits). The last layer itself takes no
    DDF. D-FINE's configs weight it 1.5 at ``T = 5``, and so do
    DEIM-D-FINE's (``loss_ddf`` 1.5 beside ``loss_fgl`` 0.15) and HF
    transformers' ``DFineConfig``.

    Args:
        temperature (float): ``T`` > 0. Defaults to 5.0.
        loss_weight (float): Weight of the loss. Defaults to 1.5.
    """

    def __init__(self,
                 temperature: float = 5.0,
                 loss_weight: float = 1.5) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}; '
                             f'D-FINE uses 5')
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Tensor,
                matched: Tensor,
                counts: Optional[Tuple[Tensor, Tensor]] = None) -> Tensor:
        """Weighted, balanced DDF of one decoder layer.

        Args:
            pred (Tensor): Logits of this layer's edge distributions,
                (N, reg_max + 1), N = 4 * queries (all images).
            target (Tensor): The last layer's logits of the same edges,
                (N, reg_max + 1); no gradient flows into them.
            weight (Tensor): Weight of each edge, (N, ); see the class.
            matched (Tensor): Whether each edge's query is matched to a gt
                box, boolean (N, ).
            counts (tuple[Tensor, Tensor], optional): The P and U whose
                square roots weight the two means, in place of this call's
                own counts. D-FINE balances its denoising layers' DDF by
                the matching queries' counts. Defaults to None.

        Returns:
            Tensor: The scalar loss.
        """
        if pred.dim() != 2 or target.shape != pred.shape or \
                weight.shape != pred.shape[:1] or \
                matched.shape != pred.shape[:1]:
            raise ValueError(
                f'pred and target must be (N, reg_max + 1), weight and '
                f'matched (N, ), got pred {tuple(pred.shape)}, target '
                f'{tuple(target.shape)}, weight {tuple(weight.shape)} and '
                f'matched {tuple(matched.shape)}')
        pred = at_least_float32(pred)
        temperature = self.temperature
        student = F.log_softmax(pred / temperature, dim=-1)
        teacher = F.log_softmax(target.detach().to(pred) / temperature, dim=-1)
        kl = F.kl_div(student, teacher, reduction='none',
                      log_target=True).sum(-1)
        loss = weight.detach().to(pred) * temperature**2 * kl

        matched = matched.bool()
        num_matched = matched.sum().to(pred)
        num_unmatched = (~matched).sum().to(pred)
        # Means of an empty group are 0 / 1; the clamps leave the others
        # unchanged, since counts are whole numbers (no host sync needed).
        mean_matched = (loss * matched).sum() / num_matched.clamp(min=1)
        mean_unmatched = (loss * ~matched).sum() / num_unmatched.clamp(min=1)
        if counts is not None:
            num_matched, num_unmatched = (c.to(pred) for c in counts)
        scale_matched, scale_unmatched = num_matched.sqrt(), \
            num_unmatched.sqrt()
        balanced = (scale_matched * mean_matched +
                    scale_unmatched * mean_unmatched) / \
            (scale_matched + scale_unmatched).clamp(min=1)
        return self.loss_weight * balanced
