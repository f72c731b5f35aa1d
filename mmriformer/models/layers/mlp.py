# Copyright (c) OpenMMLab. All rights reserved.
"""mmdet's MLP with a chosen activation."""
from mmcv.cnn import build_activation_layer
from mmdet.models.layers import MLP as ReLUMLP
from torch import Tensor


class MLP(ReLUMLP):
    """mmdet's ``MLP`` with any activation between its linear layers.

    The linear layers are mmdet's (``layers.{i}``), so checkpoints of
    mmdet's MLP load unchanged; with the default ReLU the outputs are the
    same too. DEIM's decoder (``mlp_act: silu``) takes SiLU.

    Args:
        input_dim (int): Channels of the input.
        hidden_dim (int): Channels of the hidden layers.
        output_dim (int): Channels of the output.
        num_layers (int): Linear layers; the last has no activation.
        act_cfg (dict): mmcv config of the activation. Defaults to
            ``dict(type='ReLU')``.
    """

    def __init__(self,
                 input_dim: int,
                 hidden_dim: int,
                 output_dim: int,
                 num_layers: int,
                 act_cfg: dict = dict(type='ReLU')) -> None:
        super().__init__(input_dim, hidden_dim, output_dim, num_layers)
        self.activate = build_activation_layer(act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the layers, the activation after each but the last.

        Args:
            x (Tensor): Input of shape (..., input_dim).

        Returns:
            Tensor: Output of shape (..., output_dim).
        """
        for layer in self.layers[:-1]:
            x = self.activate(layer(x))
        return self.layers[-1](x)
