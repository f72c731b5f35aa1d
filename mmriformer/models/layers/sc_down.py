# Copyright (c) OpenMMLab. All rights reserved.
from typing import Optional, Union

from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor


class SCDown(BaseModule):
    """Spatial-channel decoupled downsampling (YOLOv10), D-FINE's PAN
    downsampling.

    A 1x1 Conv-Norm (channels) then a depth-wise strided Conv-Norm (space),
    neither with an activation: far fewer weights and FLOPs than a dense
    3x3 stride-2 conv. Named ``cv1`` and ``cv2`` as in D-FINE.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel of the depth-wise conv. Defaults to 3.
        stride (int): Its stride. Defaults to 2.
        norm_cfg (dict): Norm of both convs. Defaults to
            ``dict(type='BN')``.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 stride: int = 2,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.cv1 = ConvModule(
            in_channels, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None)
        self.cv2 = ConvModule(
            out_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            groups=out_channels,
            norm_cfg=norm_cfg,
            act_cfg=None)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, ceil(H / stride), ...)."""
        return self.cv2(self.cv1(x))
