# Copyright (c) OpenMMLab. All rights reserved.
"""HGNetv2: the backbone of D-FINE (ICLR 2025) and DEIM.

PaddlePaddle's PP-HGNetV2 as D-FINE uses it (Peterande/D-FINE,
``src/nn/backbone/hgnetv2.py``): a stem of five convolutions with a max-pool
branch, then four stages of HG blocks. A block runs a chain of convolutions,
concatenates the input and every output of the chain, and squeezes that
back to the block's width with two 1x1 convolutions (the "se"
aggregation); every block after the first of a stage adds its input. Stages
3 and 4 use light blocks (a 1x1 convolution then a depthwise one).

The module and parameter names are those of the official code, so the
``backbone.*`` weights of an official D-FINE checkpoint load strictly once
the prefix is stripped. HF transformers' ``HGNetV2Backbone`` names them
otherwise; :func:`~mmriformer.converters.dfine.backbone_keys.hgnetv2_to_ours`
maps them.
"""
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...converters.dfine.backbone_keys import hgnetv2_to_ours
from ...utils.pretrained import init_pretrained
from ..utils.frozen_stages import FrozenStagesMixin


class LearnableAffine(nn.Module):
    """``scale * x + bias`` with one learnt scalar each (D-FINE's LAB)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        """Scale and shift every element alike."""
        return self.scale * x + self.bias


class ConvNormAct(ConvModule):
    """Conv (no bias), norm and optional activation, then optionally a
    :class:`LearnableAffine` (``lab``), which only follows an activation.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel size; the padding is
            ``(kernel_size - 1) // 2``.
        stride (int): Stride. Defaults to 1.
        groups (int): Convolution groups. Defaults to 1.
        act (bool): Whether a ReLU follows the norm. Defaults to True.
        use_lab (bool): Whether a learnt affine follows the ReLU. Defaults
            to False.
        norm_cfg (dict): The norm. Defaults to BatchNorm.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int = 1,
                 groups: int = 1,
                 act: bool = True,
                 use_lab: bool = False,
                 norm_cfg: dict = dict(type='BN')) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            groups=groups,
            norm_cfg=norm_cfg,
            act_cfg=dict(type='ReLU') if act else None)
        self.lab = LearnableAffine() if act and use_lab else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Conv, norm, activation, affine."""
        return self.lab(super().forward(x))


class StemBlock(nn.Module):
    """Stride-4 stem: ``stem1`` (stride 2), then a max-pool and a two-conv
    branch (2x2 kernels) side by side, ``stem3`` (stride 2) on their
    concatenation and ``stem4`` (1x1).

    Args:
        in_channels (int): Input channels.
        mid_channels (int): Channels of ``stem1`` and ``stem3``.
        out_channels (int): Output channels.
        use_lab (bool): Learnt affines after the activations.
        norm_cfg (dict): The norm.
    """

    def __init__(self, in_channels: int, mid_channels: int,
                 out_channels: int, use_lab: bool, norm_cfg: dict) -> None:
        super().__init__()
        kwargs = dict(use_lab=use_lab, norm_cfg=norm_cfg)
        self.stem1 = ConvNormAct(in_channels, mid_channels, 3, 2, **kwargs)
        self.stem2a = ConvNormAct(mid_channels, mid_channels // 2, 2,
                                  **kwargs)
        self.stem2b = ConvNormAct(mid_channels // 2, mid_channels, 2,
                                  **kwargs)
        self.stem3 = ConvNormAct(2 * mid_channels, mid_channels, 3, 2,
                                 **kwargs)
        self.stem4 = ConvNormAct(mid_channels, out_channels, 1, **kwargs)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=1, ceil_mode=True)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, out_channels, H / 4, W / 4), rounded up."""
        # The 2x2 kernels see one zero row and column at the bottom and
        # right, so both branches keep the size of stem1's output.
        x = F.pad(self.stem1(x), (0, 1, 0, 1))
        branch = self.stem2b(F.pad(self.stem2a(x), (0, 1, 0, 1)))
        x = torch.cat([self.pool(x), branch], dim=1)
        return self.stem4(self.stem3(x))


class HGBlock(nn.Module):
    """A chain of ``num_layers`` convolutions whose input and outputs are
    concatenated and aggregated by two 1x1 convolutions (to
    ``out_channels // 2``, then ``out_channels``).

    Args:
        in_channels (int): Input channels.
        mid_channels (int): Channels of each convolution of the chain.
        out_channels (int): Output channels.
        num_layers (int): Convolutions in the chain.
        kernel_size (int): Their kernel size.
        residual (bool): Whether the input is added to the output.
        light (bool): Whether each link of the chain is a 1x1 convolution
            without activation followed by a depthwise one (``conv1``,
            ``conv2``) instead of one full convolution.
        use_lab (bool): Learnt affines after the activations.
        norm_cfg (dict): The norm.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int,
                 num_layers: int, kernel_size: int, residual: bool,
                 light: bool, use_lab: bool, norm_cfg: dict) -> None:
        super().__init__()
        self.residual = residual
        kwargs = dict(use_lab=use_lab, norm_cfg=norm_cfg)
        self.layers = nn.ModuleList()
        for i in range(num_layers):
            channels = in_channels if i == 0 else mid_channels
            if light:
                layer = nn.Sequential(
                    OrderedDict(
                        conv1=ConvNormAct(
                            channels, mid_channels, 1, act=False, **kwargs),
                        conv2=ConvNormAct(
                            mid_channels,
                            mid_channels,
                            kernel_size,
                            groups=mid_channels,
                            **kwargs)))
            else:
                layer = ConvNormAct(channels, mid_channels, kernel_size,
                                    **kwargs)
            self.layers.append(layer)
        total = in_channels + num_layers * mid_channels
        self.aggregation = nn.Sequential(
            ConvNormAct(total, out_channels // 2, 1, **kwargs),
            ConvNormAct(out_channels // 2, out_channels, 1, **kwargs))

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_channels, H, W) -> (N, out_channels, H, W)."""
        outs = [x]
        for layer in self.layers:
            outs.append(layer(outs[-1]))
        y = self.aggregation(torch.cat(outs, dim=1))
        return y + x if self.residual else y


class HGStage(nn.Module):
    """An optional stride-2 depthwise 3x3 convolution (``downsample``, no
    activation), then ``num_blocks`` :class:`HGBlock` (``blocks``), all but
    the first residual.

    Args:
        in_channels (int): Input channels.
        mid_channels (int): Channels inside the blocks.
        out_channels (int): Output channels.
        num_blocks (int): Blocks.
        num_layers (int): Convolutions per block.
        downsample (bool): Whether the stage halves the resolution.
        light (bool): Light blocks (see :class:`HGBlock`).
        kernel_size (int): Kernel size in the blocks.
        use_lab (bool): Learnt affines after the activations.
        norm_cfg (dict): The norm.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int,
                 num_blocks: int, num_layers: int, downsample: bool,
                 light: bool, kernel_size: int, use_lab: bool,
                 norm_cfg: dict) -> None:
        super().__init__()
        self.downsample = ConvNormAct(
            in_channels,
            in_channels,
            3,
            stride=2,
            groups=in_channels,
            act=False,
            norm_cfg=norm_cfg) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[
            HGBlock(in_channels if i == 0 else out_channels, mid_channels,
                    out_channels, num_layers, kernel_size, i > 0, light,
                    use_lab, norm_cfg) for i in range(num_blocks)
        ])

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_channels, H, W) -> (N, out_channels, H', W')."""
        return self.blocks(self.downsample(x))


@MODELS.register_module()
class HGNetV2(FrozenStagesMixin, BaseModule):
    """HGNetv2 backbone (PP-HGNetV2 as in D-FINE and DEIM).

    D-FINE's detectors use: N ``arch='B0', use_lab=True,
    out_indices=(2, 3)``; S ``'B0'``, M ``'B2'`` (both ``use_lab=True``);
    L ``'B4'``, X ``'B5'`` (``use_lab=False``, stem frozen and all norms
    frozen: ``frozen_stages=0, norm_eval=True,
    norm_cfg=dict(type='BN', requires_grad=False)``, the equivalent of
    D-FINE's ``freeze_at=0, freeze_stem_only=True, freeze_norm=True``);
    all but N return ``out_indices=(1, 2, 3)``.

    Official weights (ImageNet ``PPHGNetV2_B*_stage1.pth`` or the
    ``backbone.*`` part of a D-FINE checkpoint) load with
    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)``,
    strictly; HF transformers' ``HGNetV2Backbone`` keys are converted.

    Args:
        arch (str): ``'B0'`` to ``'B5'``. Defaults to ``'B0'``.
        use_lab (bool): A learnt scalar affine after every activation.
            Defaults to False.
        out_indices (Sequence[int]): Stages (0 to 3, strides 4 to 32)
            whose outputs are returned. Defaults to (1, 2, 3).
        frozen_stages (int): -1 freezes nothing, 0 the stem, ``k`` the stem
            and stages ``0..k-1`` (parameters without gradients, norms in
            eval mode). Defaults to -1.
        norm_eval (bool): Keep the BatchNorms in eval mode while training.
            Defaults to False.
        norm_cfg (dict): The norm of every convolution. Defaults to
            ``dict(type='BN', requires_grad=True)``.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to None (PyTorch's, and mmcv's for the convolutions).
    """
    # Per arch: stem (mid, out) channels, and per stage (in, mid, out,
    # blocks, layers per block, downsample, light blocks, kernel size).
    arch_settings = {
        'B0': dict(stem=(16, 16), stages=(
            (16, 16, 64, 1, 3, False, False, 3),
            (64, 32, 256, 1, 3, True, False, 3),
            (256, 64, 512, 2, 3, True, True, 5),
            (512, 128, 1024, 1, 3, True, True, 5))),
        'B1': dict(stem=(24, 32), stages=(
            (32, 32, 64, 1, 3, False, False, 3),
            (64, 48, 256, 1, 3, True, False, 3),
            (256, 96, 512, 2, 3, True, True, 5),
            (512, 192, 1024, 1, 3, True, True, 5))),
        'B2': dict(stem=(24, 32), stages=(
            (32, 32, 96, 1, 4, False, False, 3),
            (96, 64, 384, 1, 4, True, False, 3),
            (384, 128, 768, 3, 4, True, True, 5),
            (768, 256, 1536, 1, 4, True, True, 5))),
        'B3': dict(stem=(24, 32), stages=(
            (32, 32, 128, 1, 5, False, False, 3),
            (128, 64, 512, 1, 5, True, False, 3),
            (512, 128, 1024, 3, 5, True, True, 5),
            (1024, 256, 2048, 1, 5, True, True, 5))),
        'B4': dict(stem=(32, 48), stages=(
            (48, 48, 128, 1, 6, False, False, 3),
            (128, 96, 512, 1, 6, True, False, 3),
            (512, 192, 1024, 3, 6, True, True, 5),
            (1024, 384, 2048, 1, 6, True, True, 5))),
        'B5': dict(stem=(32, 64), stages=(
            (64, 64, 128, 1, 6, False, False, 3),
            (128, 128, 512, 2, 6, True, False, 3),
            (512, 256, 1024, 5, 6, True, True, 5),
            (1024, 512, 2048, 2, 6, True, True, 5))),
    }

    def __init__(self,
                 arch: str = 'B0',
                 use_lab: bool = False,
                 out_indices: Sequence[int] = (1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if arch not in self.arch_settings:
            raise ValueError(f'arch={arch!r} is not an HGNetV2 arch: choose '
                             f'one of {sorted(self.arch_settings)}.')
        out_indices = tuple(out_indices)
        if not out_indices or len(set(out_indices)) != len(out_indices) or \
                not set(out_indices) <= {0, 1, 2, 3}:
            raise ValueError(
                f'out_indices={out_indices!r}: give distinct stages from 0 '
                f'to 3 (strides 4, 8, 16, 32).')
        if frozen_stages not in range(-1, 5):
            raise ValueError(
                f'frozen_stages={frozen_stages!r} is out of range: use -1 '
                f'(nothing frozen), 0 (the stem) up to 4 (the stem and all '
                f'four stages).')
        self.arch = arch
        self.use_lab = use_lab
        self.out_indices = tuple(sorted(out_indices))
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        settings = self.arch_settings[arch]
        stages = settings['stages']
        self.stem = StemBlock(3, *settings['stem'], use_lab, norm_cfg)
        self.stages = nn.ModuleList(
            HGStage(*stage, use_lab=use_lab, norm_cfg=norm_cfg)
            for stage in stages)
        self.out_channels = [stages[i][2] for i in self.out_indices]
        self._freeze_stages()

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Compute the outputs.

        Args:
            x (Tensor): Images of shape (N, 3, H, W).

        Returns:
            tuple[Tensor]: One map per entry of ``out_indices``, of
            ``out_channels[i]`` channels at stride 4, 8, 16 or 32 (sizes
            rounded up).
        """
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        for module in [self.stem, *self.stages[:self.frozen_stages]]:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def init_weights(self) -> None:
        """Initialise, or load the checkpoint of a ``Pretrained`` init_cfg
        (strictly, in the official or HF layout)."""
        if isinstance(self.init_cfg, dict) and \
                self.init_cfg.get('type') == 'Pretrained':
            init_pretrained(
                self,
                self.init_cfg,
                fix=f'Give the weights of an HGNetV2-{self.arch} with '
                f'use_lab={self.use_lab}',
                convert=hgnetv2_to_ours)
            self._is_init = True
            return
        super().init_weights()
