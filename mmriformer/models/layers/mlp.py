# Copyright (c) OpenMMLab. All rights reserved.
import torch.nn.functional as F
from torch import Tensor, nn


class MLP(nn.Module):
    """A stack of ``num_layers`` Linear layers with ReLU between them.

    There is no activation after the last layer. Used for RT-DETR's box heads
    (256 -> 256 -> 256 -> 4) and its query position head (4 -> 512 -> 256).
    The parameters are ``layers.{i}.weight`` / ``layers.{i}.bias``, the same
    keys as mmdet's and RT-DETR's MLPs, so checkpoints convert by prefix only.

    Args:
        input_dim (int): Channels of the input.
        hidden_dim (int): Channels between two layers.
        output_dim (int): Channels of the output.
        num_layers (int): Number of Linear layers, at least 1.
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int,
                 num_layers: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}')
        in_dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        out_dims = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(
            nn.Linear(i, o) for i, o in zip(in_dims, out_dims))

    def forward(self, x: Tensor) -> Tensor:
        """(..., input_dim) -> (..., output_dim)."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = F.relu(x)
        return x
