# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional, Union

import torch
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from .csp_rep_layer import CSPRepLayer


class RepNCSPELAN4(BaseModule):
    """CSP-ELAN block of RepVGG layers (YOLOv9), D-FINE's CCFM fusion.

    ``cv1`` (1x1 Conv-Norm-Act) makes ``hidden_channels``, split in two
    halves ``a`` and ``b``; ``b`` runs through ``cv2`` and its result on
    through ``cv3``, each a :class:`CSPRepLayer` of ``num_blocks`` RepVGG
    blocks followed by a 3x3 Conv-Norm-Act, ``branch_channels`` wide;
    ``cv4`` (1x1 Conv-Norm-Act) projects the concatenation
    ``[a, b, cv2(b), cv3(cv2(b))]`` to ``out_channels``. Module names are
    D-FINE's.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        hidden_channels (int): Channels of ``cv1``; must be even.
        branch_channels (int): Channels of ``cv2`` and ``cv3``.
        num_blocks (int): RepVGG blocks per CSPRepLayer. Defaults to 3.
        norm_cfg (dict): Norm of every conv. Defaults to
            ``dict(type='BN')``.
        act_cfg (dict): Activation of every conv. Defaults to
            ``dict(type='SiLU')``.
        deploy (bool): Build the RepVGG blocks in deploy form.
            Defaults to False.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 hidden_channels: int,
                 branch_channels: int,
                 num_blocks: int = 3,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='SiLU'),
                 deploy: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if hidden_channels % 2:
            raise ValueError(
                f'RepNCSPELAN4 hidden_channels={hidden_channels} must be '
                f'even: cv1 is split into two halves.')
        conv_args = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)

        def branch(channels: int) -> nn.Sequential:
            return nn.Sequential(
                CSPRepLayer(
                    channels,
                    branch_channels,
                    num_blocks=num_blocks,
                    deploy=deploy,
                    **conv_args),
                ConvModule(
                    branch_channels, branch_channels, 3, padding=1,
                    **conv_args))

        self.cv1 = ConvModule(in_channels, hidden_channels, 1, **conv_args)
        self.cv2 = branch(hidden_channels // 2)
        self.cv3 = branch(branch_channels)
        self.cv4 = ConvModule(hidden_channels + 2 * branch_channels,
                              out_channels, 1, **conv_args)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H, W)."""
        outs = list(self.cv1(x).chunk(2, 1))
        outs.append(self.cv2(outs[-1]))
        outs.append(self.cv3(outs[-1]))
        return self.cv4(torch.cat(outs, 1))
