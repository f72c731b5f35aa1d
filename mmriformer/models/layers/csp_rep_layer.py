# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional, Union

from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from .repvgg_block import RepVggBlock


class CSPRepLayer(BaseModule):
    """Cross-stage-partial layer of RepVGG blocks (RT-DETR's CCFM fusion).

    ``conv3(blocks(conv1(x)) + conv2(x))``: two 1x1 Conv-Norm-Act branches
    of ``int(out_channels * expansion)`` channels, the first refined by
    ``num_blocks`` :class:`RepVggBlock`, summed and projected by a 1x1
    Conv-Norm-Act ``conv3`` (an identity when no projection is needed).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        num_blocks (int): Number of RepVGG blocks. Defaults to 3.
        expansion (float): Hidden channels over ``out_channels``.
            Defaults to 1.0.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation config. Defaults to
            ``dict(type='SiLU')``.
        deploy (bool): Build the RepVGG blocks in deploy form.
            Defaults to False.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 num_blocks: int = 3,
                 expansion: float = 1.0,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='SiLU'),
                 deploy: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        hidden_channels = int(out_channels * expansion)
        self.conv1 = ConvModule(
            in_channels,
            hidden_channels,
            1,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.conv2 = ConvModule(
            in_channels,
            hidden_channels,
            1,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        self.bottlenecks = nn.Sequential(*[
            RepVggBlock(
                hidden_channels,
                hidden_channels,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
                deploy=deploy) for _ in range(num_blocks)
        ])
        if hidden_channels != out_channels:
            self.conv3 = ConvModule(
                hidden_channels,
                out_channels,
                1,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg)
        else:
            self.conv3 = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H, W)."""
        return self.conv3(self.bottlenecks(self.conv1(x)) + self.conv2(x))
