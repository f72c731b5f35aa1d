# Copyright (c) OpenMMLab. All rights reserved.
"""RIFormer: a MetaFormer without token mixer (CVPR 2023).

Train form: the keys and outputs of mmpretrain's ``RIFormer``, so its
ImageNet checkpoints load unchanged. Deploy form (``deploy=True`` or
:meth:`RIFormer.switch_to_deploy`): each block is a normalisation plus two
1x1 convolutions (:class:`~mmriformer.models.layers.RIFormerBlock`); the
affine token mixer, both layer scales and the second norm's affine are
folded away.
"""
import copy
from typing import List, Optional, Sequence, Union

import torch
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...utils.pretrained import init_pretrained
from ..layers.riformer_block import RIFormerBlock
from ..utils.frozen_stages import FrozenStagesMixin
from ..utils.onednn import PackedWeight, conv2d
from ..utils.reparameterize import switch_to_deploy


class PatchEmbed(nn.Module):
    """A strided convolution: the stem and the downsampling layers.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel size.
        stride (int): Stride.
        padding (int): Padding.
        deploy (bool): Build the deploy form. Defaults to False.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int,
                 padding: int,
                 deploy: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding)
        self.deploy = False
        self.packed_weight = PackedWeight()
        if deploy:
            self.switch_to_deploy()

    def switch_to_deploy(self) -> None:
        """Take the deploy form: the same weights, in channels-last order
        (as the deploy activations are, so no call reorders the weight),
        through oneDNN's packed-weight kernel in CPU inference."""
        self.proj.to(memory_format=torch.channels_last)
        self.deploy = True

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, H, W) -> (N, C_out, H / stride, W / stride)."""
        if self.deploy:
            return conv2d(x, self.proj, self.packed_weight)
        return self.proj(x)


@MODELS.register_module()
class RIFormer(FrozenStagesMixin, BaseModule):
    """RIFormer backbone for detection, with a fast deploy form.

    A paper-faithful re-implementation of mmpretrain's ``RIFormer`` (same
    state-dict keys and outputs in train form). Registered in mmdet's scope;
    in an mmpretrain config use ``type='mmdet.RIFormer'``, because
    mmpretrain registers its own ``RIFormer``.

    Args:
        arch (str | dict): 's12', 's24', 's36', 'm36' or 'm48', or a dict
            with ``layers`` and ``embed_dims`` (4 values each) and optional
            ``mlp_ratios`` and ``layer_scale_init_value``. Defaults to 's12'.
        in_channels (int): Input image channels. Defaults to 3.
        norm_cfg (dict): Norm of the blocks and the outputs. Defaults to
            ``dict(type='GN', num_groups=1)``; ``dict(type='LN2d')`` and any
            mmcv norm with a per-channel affine also work.
        act_cfg (dict): Activation of the MLPs. Defaults to GELU.
        in_patch_size (int): Stem kernel size. Defaults to 7.
        in_stride (int): Stem stride. Defaults to 4.
        in_pad (int): Stem padding. Defaults to 2.
        down_patch_size (int): Downsampling kernel size. Defaults to 3.
        down_stride (int): Downsampling stride. Defaults to 2.
        down_pad (int): Downsampling padding. Defaults to 1.
        drop_rate (float): Dropout rate in the MLPs. Defaults to 0.
        drop_path_rate (float): Stochastic depth rate of the last block,
            ramped linearly from 0 over all blocks. Defaults to 0.
        out_indices (int | Sequence[int]): Network positions whose outputs
            are returned, each through its own norm ``norm{i}``. Positions
            0, 2, 4 and 6 are the four stages (strides 4, 8, 16, 32), 1, 3
            and 5 the downsampling layers (as in mmpretrain, there is none
            between two stages of equal width, and later positions shift);
            negative values count from the end. Defaults to -1 (the last
            stage).
        frozen_stages (int): Freeze the stem and ``network[0..k]`` with
            their output norms; -1 freezes nothing. Defaults to -1.
        norm_eval (bool): Keep BatchNorm layers in eval mode while
            training. Defaults to False.
        with_cp (bool): Gradient checkpointing per block. Defaults to False.
        deploy (bool): Build the deploy form. Defaults to False.
        init_cfg (dict | list[dict], optional): Initialisation config;
            ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``
            loads an mmpretrain checkpoint. Defaults to mmpretrain's
            ImageNet initialisation.
    """
    arch_settings = {
        's12': dict(layers=[2, 2, 6, 2], embed_dims=[64, 128, 320, 512],
                    mlp_ratios=[4, 4, 4, 4], layer_scale_init_value=1e-5),
        's24': dict(layers=[4, 4, 12, 4], embed_dims=[64, 128, 320, 512],
                    mlp_ratios=[4, 4, 4, 4], layer_scale_init_value=1e-5),
        's36': dict(layers=[6, 6, 18, 6], embed_dims=[64, 128, 320, 512],
                    mlp_ratios=[4, 4, 4, 4], layer_scale_init_value=1e-6),
        'm36': dict(layers=[6, 6, 18, 6], embed_dims=[96, 192, 384, 768],
                    mlp_ratios=[4, 4, 4, 4], layer_scale_init_value=1e-6),
        'm48': dict(layers=[8, 8, 24, 8], embed_dims=[96, 192, 384, 768],
                    mlp_ratios=[4, 4, 4, 4], layer_scale_init_value=1e-6),
    }

    def __init__(self,
                 arch: Union[str, dict] = 's12',
                 in_channels: int = 3,
                 norm_cfg: dict = dict(type='GN', num_groups=1),
                 act_cfg: dict = dict(type='GELU'),
                 in_patch_size: int = 7,
                 in_stride: int = 4,
                 in_pad: int = 2,
                 down_patch_size: int = 3,
                 down_stride: int = 2,
                 down_pad: int = 1,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 out_indices: Union[int, Sequence[int]] = -1,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 deploy: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = [
                     dict(type='TruncNormal', layer=['Conv2d', 'Linear'],
                          std=.02, bias=0.),
                     dict(type='Constant', layer=['GroupNorm', 'LayerNorm'],
                          val=1., bias=0.)
                 ]) -> None:
        super().__init__(init_cfg=copy.deepcopy(init_cfg))
        self.arch = self.parse_arch(arch)
        self.in_channels = in_channels
        self.norm_eval = norm_eval

        layers = self.arch['layers']
        dims = self.arch['embed_dims']
        self.embed_dims = dims
        self.patch_embed = PatchEmbed(in_channels, dims[0], in_patch_size,
                                      in_stride, in_pad, deploy)
        dpr = torch.linspace(0, drop_path_rate, sum(layers)).tolist()
        # network = [stage0, down0, stage1, down1, stage2, down2, stage3];
        # as in mmpretrain, a downsampling layer only between stages of
        # different widths, so positions shift when two widths are equal.
        self.network = nn.ModuleList()
        self.position_channels = []
        for i, depth in enumerate(layers):
            start = sum(layers[:i])
            self.network.append(
                nn.Sequential(*[
                    RIFormerBlock(
                        dims[i],
                        mlp_ratio=self.arch['mlp_ratios'][i],
                        norm_cfg=norm_cfg,
                        act_cfg=act_cfg,
                        drop=drop_rate,
                        drop_path=dpr[start + j],
                        layer_scale_init_value=self.arch[
                            'layer_scale_init_value'],
                        deploy=deploy,
                        with_cp=with_cp) for j in range(depth)
                ]))
            self.position_channels.append(dims[i])
            if i < 3 and dims[i] != dims[i + 1]:
                self.network.append(
                    PatchEmbed(dims[i], dims[i + 1], down_patch_size,
                               down_stride, down_pad, deploy))
                self.position_channels.append(dims[i + 1])
        num_positions = len(self.network)
        self.out_indices = self.parse_out_indices(out_indices, num_positions)
        if not isinstance(frozen_stages, int) or \
                not -1 <= frozen_stages < num_positions:
            raise ValueError(
                f'frozen_stages={frozen_stages!r} is out of range: use -1 '
                f'(nothing frozen) up to {num_positions - 1} (the whole '
                f'network).')
        self.frozen_stages = frozen_stages
        for i in self.out_indices:
            self.add_module(f'norm{i}',
                            build_norm_layer(norm_cfg, self.out_channel(i))[1])
        self._freeze_stages()

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        """Validate ``arch`` and return the full arch dict."""
        if isinstance(arch, str):
            if arch not in cls.arch_settings:
                raise ValueError(
                    f'arch={arch!r} is not a RIFormer arch: choose one of '
                    f'{sorted(cls.arch_settings)} or pass a dict with '
                    f'"layers" and "embed_dims".')
            return copy.deepcopy(cls.arch_settings[arch])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {arch!r}')
        missing = [k for k in ('layers', 'embed_dims') if k not in arch]
        if missing:
            raise ValueError(
                f'arch={arch!r} must have {" and ".join(map(repr, missing))}'
                f' (4 values each, one per stage).')
        arch = {'mlp_ratios': [4, 4, 4, 4], 'layer_scale_init_value': 1e-5,
                **arch}
        for key in ('layers', 'embed_dims', 'mlp_ratios'):
            if len(arch[key]) != 4:
                raise ValueError(
                    f'arch["{key}"]={arch[key]!r} must have 4 values, one '
                    f'per stage.')
        return arch

    @staticmethod
    def parse_out_indices(out_indices: Union[int, Sequence[int]],
                          num_positions: int = 7) -> tuple:
        """Validate ``out_indices``; return sorted non-negative positions.

        Args:
            out_indices (int | Sequence[int]): Network positions, negative
                ones counting from the end.
            num_positions (int): Length of the network: 7 when all four
                widths differ.
        """
        indices = [out_indices] if isinstance(out_indices, int) else list(
            out_indices)
        result = []
        for idx in indices:
            if not isinstance(idx, int) or \
                    not -num_positions <= idx < num_positions:
                raise ValueError(
                    f'out_indices={out_indices!r}: {idx!r} is out of range; '
                    f'network positions are 0..{num_positions - 1} (stages '
                    f'and the downsampling layers between them) or '
                    f'-{num_positions}..-1.')
            result.append(idx % num_positions)
        if not result or len(set(result)) != len(result):
            raise ValueError(f'out_indices={out_indices!r} must be non-empty '
                             f'with no position repeated.')
        return tuple(sorted(result))

    def out_channel(self, index: int) -> int:
        """Channels of the output at network position ``index``."""
        return self.position_channels[index]

    @property
    def out_channels(self) -> List[int]:
        """Channels of each output, in order."""
        return [self.out_channel(i) for i in self.out_indices]

    def forward(self, x: Tensor) -> tuple:
        """Compute the outputs.

        Args:
            x (Tensor): Images of shape (N, in_channels, H, W).

        Returns:
            tuple[Tensor]: One (N, C_i, H / s_i, W / s_i) map per entry of
            ``out_indices``.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'RIFormer was built with in_channels={self.in_channels} '
                f'and expects (N, {self.in_channels}, H, W) input, got shape '
                f'{tuple(x.shape)}; set in_channels to match the images.')
        if self.deploy:
            # The fused deploy blocks work on channels-last memory; so do
            # the convolutions between them, given channels-last input.
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.patch_embed(x)
        outs = []
        for idx, layer in enumerate(self.network):
            x = layer(x)
            if idx in self.out_indices:
                outs.append(getattr(self, f'norm{idx}')(x))
        return tuple(outs)

    @property
    def deploy(self) -> bool:
        """Whether the backbone is in deploy form."""
        return self.patch_embed.deploy

    def switch_to_deploy(self) -> None:
        """Fold into the deploy form (mmpretrain's backbone interface);
        eval-mode outputs stay the same and frozen stages stay frozen.

        The same as :func:`~mmriformer.models.switch_to_deploy` on this
        backbone.
        """
        switch_to_deploy(self)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        frozen = [self.patch_embed] + [
            self.network[i] for i in range(self.frozen_stages + 1)
        ] + [
            getattr(self, f'norm{i}') for i in self.out_indices
            if i <= self.frozen_stages
        ]
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def init_weights(self) -> None:
        """Initialise, or load the checkpoint of a ``Pretrained`` init_cfg."""
        if isinstance(self.init_cfg, dict) and \
                self.init_cfg.get('type') == 'Pretrained':
            arch = self.arch
            # Output norms depend on out_indices, not on the checkpoint.
            init_pretrained(
                self,
                self.init_cfg,
                optional=[f'norm{i}' for i in range(len(self.network))],
                fix=f'Set arch to the one the checkpoint was trained with '
                f'(now layers={arch["layers"]}, embed_dims='
                f'{arch["embed_dims"]})')
            self._is_init = True
            return
        super().init_weights()
        if self.deploy:
            for m in self.modules():
                if isinstance(m, RIFormerBlock):
                    m.init_as_folded_train_form(self.init_cfg)
