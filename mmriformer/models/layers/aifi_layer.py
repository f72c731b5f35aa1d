# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional, Union

from mmcv.cnn import build_activation_layer
from mmengine.model import BaseModule
from torch import Tensor, nn


class AIFILayer(BaseModule):
    """Post-norm transformer encoder layer of RT-DETR's AIFI.

    AIFI (attention-based intra-scale feature interaction) runs plain self
    attention over the tokens of one feature level::

        x = norm1(x + dropout1(attn(q=x + pos, k=x + pos, v=x)))
        x = norm2(x + dropout2(linear2(dropout(act(linear1(x))))))

    The position embedding is added to queries and keys only.

    Args:
        embed_dims (int): Token channels. Defaults to 256.
        num_heads (int): Attention heads. Defaults to 8.
        feedforward_channels (int): Hidden channels of the FFN.
            Defaults to 1024.
        dropout (float): Dropout rate of the attention weights, the FFN
            and both residual branches. Defaults to 0.
        act_cfg (dict): FFN activation config. Defaults to
            ``dict(type='GELU')``.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 feedforward_channels: int = 1024,
                 dropout: float = 0.,
                 act_cfg: dict = dict(type='GELU'),
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.self_attn = nn.MultiheadAttention(
            embed_dims, num_heads, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(embed_dims, feedforward_channels)
        self.act = build_activation_layer(act_cfg)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(feedforward_channels, embed_dims)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.norm2 = nn.LayerNorm(embed_dims)

    def forward(self, x: Tensor, pos: Optional[Tensor] = None) -> Tensor:
        """Encode tokens.

        Args:
            x (Tensor): Tokens of shape (N, L, embed_dims).
            pos (Tensor, optional): Position embedding broadcastable to
                ``x``, e.g. of shape (1, L, embed_dims).

        Returns:
            Tensor: Tokens of shape (N, L, embed_dims).
        """
        query = x if pos is None else x + pos
        attn = self.self_attn(query, query, x, need_weights=False)[0]
        x = self.norm1(x + self.dropout1(attn))
        ffn = self.linear2(self.dropout(self.act(self.linear1(x))))
        return self.norm2(x + self.dropout2(ffn))
