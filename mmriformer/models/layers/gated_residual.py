# Copyright (c) OpenMMLab. All rights reserved.
"""D-FINE's gated residual connection."""
import torch
from torch import Tensor, nn


class GatedResidual(nn.Module):
    """A residual sum whose two terms are weighted by learnt gates, then
    normalised: ``LayerNorm(g1 * residual + g2 * update)``.

    The gates ``(g1, g2) = sigmoid(gate([residual, update]))`` are per
    channel and per query. D-FINE's decoder layer puts this after its
    cross-attention in place of the plain sum (its ``Gate``, held as
    ``gateway``); the names ``gate`` and ``norm`` are D-FINE's.

    Args:
        embed_dims (int): Channels of both terms.
    """

    def __init__(self, embed_dims: int) -> None:
        super().__init__()
        self.gate = nn.Linear(2 * embed_dims, 2 * embed_dims)
        self.norm = nn.LayerNorm(embed_dims)
        self.init_weights()

    def init_weights(self) -> None:
        """Start as D-FINE does: both gates 0.5 whatever the input."""
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, residual: Tensor, update: Tensor) -> Tensor:
        """Gate, sum and normalise.

        Args:
            residual (Tensor): The layer's input, shape (..., embed_dims).
            update (Tensor): What the sublayer computed from it, shape
                (..., embed_dims).

        Returns:
            Tensor: Shape (..., embed_dims).
        """
        gates = self.gate(torch.cat([residual, update], -1)).sigmoid()
        residual_gate, update_gate = gates.chunk(2, -1)
        return self.norm(residual_gate * residual + update_gate * update)
