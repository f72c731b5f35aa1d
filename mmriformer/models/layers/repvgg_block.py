# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional, Union

import torch
from mmcv.cnn import ConvModule, build_activation_layer
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..utils.reparameterize import fold_conv_module, pad_1x1_to_3x3


class RepVggBlock(BaseModule):
    """RepVGG block without identity branch, as in RT-DETR's CSPRepLayer.

    Train form: ``act(BN(conv3x3(x)) + BN(conv1x1(x)))``. Deploy form
    (``deploy=True`` or :meth:`switch_to_deploy`): ``act(conv3x3(x))`` with
    a single biased 3x3 conv holding both branches.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        norm_cfg (dict, optional): Norm config of both branches; only
            BatchNorm can be folded by :meth:`switch_to_deploy`. Defaults to
            ``dict(type='BN')``.
        act_cfg (dict, optional): Activation config; None for no
            activation. Defaults to ``dict(type='SiLU')``.
        deploy (bool): Build the deploy form directly, e.g. to load a
            deploy checkpoint. Defaults to False.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: Optional[dict] = dict(type='SiLU'),
                 deploy: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.deploy = deploy
        if deploy:
            self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        else:
            self.conv1 = ConvModule(
                in_channels,
                out_channels,
                3,
                padding=1,
                norm_cfg=norm_cfg,
                act_cfg=None)
            self.conv2 = ConvModule(
                in_channels, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None)
        self.act = build_activation_layer(act_cfg) if act_cfg else \
            nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H, W)."""
        if self.deploy:
            return self.act(self.conv(x))
        return self.act(self.conv1(x) + self.conv2(x))

    def switch_to_deploy(self) -> None:
        """Fuse both branches into one 3x3 conv, in place.

        Uses the BN running statistics, so the outputs stay the same in eval
        mode; a frozen block stays frozen. Calling it again does nothing.
        """
        if self.deploy:
            return
        frozen = not self.conv1.conv.weight.requires_grad
        weight, bias = fold_conv_module(self.conv1)
        weight_1x1, bias_1x1 = fold_conv_module(self.conv2)
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            3,
            padding=1,
            device=weight.device,
            dtype=weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(weight + pad_1x1_to_3x3(weight_1x1))
            conv.bias.copy_(bias + bias_1x1)
        conv.requires_grad_(not frozen)
        del self.conv1, self.conv2
        self.conv = conv
        self.deploy = True
