# Copyright (c) OpenMMLab. All rights reserved.
"""D-FINE's location quality estimator."""
import torch
from torch import Tensor, nn

from .mlp import MLP


class LocationQualityEstimator(nn.Module):
    """D-FINE's LQE: a class-score correction from how peaked a query's
    edge distributions are.

    For each of the four edge distributions it takes the ``top_k`` largest
    probabilities and their mean; an MLP maps these ``4 * (top_k + 1)``
    statistics to one logit, added to every class logit of the query
    (sharp distributions signal a well-localised box). Submodule names
    follow D-FINE's ``LQE`` (``reg_conf.layers.{i}``).

    Args:
        reg_max (int): D-FINE's ``reg_max``: each distribution has
            ``reg_max + 1`` bins.
        top_k (int): Largest probabilities taken per edge. Defaults to 4.
        hidden_dims (int): Hidden channels of the MLP. Defaults to 64.
        num_layers (int): Linear layers of the MLP. Defaults to 2.
        act_cfg (dict): mmcv config of the MLP's activation (DEIM's
            D-FINE: SiLU). Defaults to ``dict(type='ReLU')``.
    """

    def __init__(self,
                 reg_max: int,
                 top_k: int = 4,
                 hidden_dims: int = 64,
                 num_layers: int = 2,
                 act_cfg: dict = dict(type='ReLU')) -> None:
        super().__init__()
        if not 0 < top_k <= reg_max + 1:
            raise ValueError(f'top_k must be in [1, reg_max + 1 = '
                             f'{reg_max + 1}], got {top_k}')
        self.bins = reg_max + 1
        self.top_k = top_k
        self.reg_conf = MLP(4 * (top_k + 1), hidden_dims, 1, num_layers,
                            act_cfg)
        self.init_weights()

    def init_weights(self) -> None:
        """Start as D-FINE does: no correction (the last layer is zero)."""
        nn.init.zeros_(self.reg_conf.layers[-1].weight)
        nn.init.zeros_(self.reg_conf.layers[-1].bias)

    def forward(self, scores: Tensor, corners: Tensor) -> Tensor:
        """Correct the class logits.

        Args:
            scores (Tensor): Class logits, shape (..., num_classes).
            corners (Tensor): Edge-distribution logits, shape
                (..., 4 * (reg_max + 1)).

        Returns:
            Tensor: Corrected logits, shape (..., num_classes).
        """
        probs = corners.unflatten(-1, (4, self.bins)).softmax(-1)
        top = probs.topk(self.top_k, dim=-1)[0]
        stats = torch.cat([top, top.mean(-1, keepdim=True)], -1)
        return scores + self.reg_conf(stats.flatten(-2))
