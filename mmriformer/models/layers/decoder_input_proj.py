# Copyright (c) OpenMMLab. All rights reserved.
from typing import List, Sequence

from mmcv.cnn import ConvModule
from torch import Tensor, nn


class DecoderInputProjection(nn.ModuleList):
    """Project the encoder's maps to the decoder's width, level by level.

    As RT-DETR's decoder ``input_proj``: a 1x1 conv without bias and a
    BatchNorm per encoder level, no activation, so the memory the decoder
    attends to is normalised and may come from an encoder of another width
    (R101: 384 -> 256). D-FINE passes a level that already has the
    decoder's width unchanged (``nn.Identity``, ``same_width_identity``).
    Levels beyond the encoder's are made by 3x3 stride-2
    conv + BN, the first from the coarsest encoder map, each next one from
    the level before.

    Args:
        in_channels (Sequence[int]): Channels of each encoder level.
        embed_dims (int): Channels of the decoder.
        num_levels (int): Levels the decoder attends to, at least
            ``len(in_channels)``.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        same_width_identity (bool): An encoder level of ``embed_dims``
            channels is not projected, as in D-FINE. Defaults to False
            (RT-DETR's: every level projected).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 embed_dims: int,
                 num_levels: int,
                 norm_cfg: dict = dict(type='BN'),
                 same_width_identity: bool = False) -> None:
        if num_levels < len(in_channels):
            raise ValueError(
                f'decoder.layer_cfg.num_levels={num_levels} but the encoder '
                f'gives {len(in_channels)} feature levels; set '
                f'decoder.layer_cfg.num_levels to at least '
                f'{len(in_channels)}.')
        projections = [
            nn.Identity() if same_width_identity and c == embed_dims else
            ConvModule(c, embed_dims, 1, bias=False, norm_cfg=norm_cfg,
                       act_cfg=None) for c in in_channels
        ]
        channels = in_channels[-1]
        for _ in range(num_levels - len(in_channels)):
            projections.append(
                ConvModule(channels, embed_dims, 3, stride=2, padding=1,
                           bias=False, norm_cfg=norm_cfg, act_cfg=None))
            channels = embed_dims
        super().__init__(projections)
        self.num_inputs = len(in_channels)

    def init_weights(self) -> None:
        """Xavier-uniform convolutions, as RT-DETR initialises them."""
        for projection in self:
            if isinstance(projection, ConvModule):
                nn.init.xavier_uniform_(projection.conv.weight)

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """Project the encoder maps and add the extra levels.

        Args:
            feats (Sequence[Tensor]): Encoder maps, each (N, C_l, H_l, W_l).

        Returns:
            list[Tensor]: One (N, embed_dims, H_l, W_l) map per level.
        """
        if len(feats) != self.num_inputs:
            raise ValueError(f'Expected {self.num_inputs} encoder maps, got '
                             f'{len(feats)}.')
        outs = [proj(feat) for proj, feat in zip(self, feats)]
        source = feats[-1]
        for proj in list(self)[self.num_inputs:]:
            outs.append(proj(source))
            source = outs[-1]
        return outs
