# Copyright (c) OpenMMLab. All rights reserved.
"""RIFormer: a MetaFormer without token mixer (CVPR 2023).

Train form: the keys and outputs of mmpretrain's ``RIFormer``, so its
ImageNet checkpoints load unchanged. Deploy form (``deploy=True`` or
:meth:`RIFormer.switch_to_deploy`): each block is a normalisation plus two
1x1 convolutions; the affine token mixer, both layer scales and the second
norm's affine are folded away.
"""
import copy
from typing import List, Optional, Sequence, Union

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmdet.registry import MODELS
from mmengine.model import BaseModule, initialize
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...utils.pretrained import init_pretrained
from ..layers.norm import build_affine_free_norm
from ..utils.onednn import (PackedWeight, conv2d, fused_norm_kind,
                            riformer_block_fused)
from ..utils.reparam import fold_riformer_block_state, switch_to_deploy


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


class Affine(nn.Module):
    """The training-time token mixer: ``scale * x + shift - x`` per channel.

    Args:
        channels (int): Number of channels.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.affine = nn.Conv2d(channels, channels, 1, groups=channels)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        return self.affine(x) - x


class ConvMLP(nn.Module):
    """Channel MLP of two 1x1 convolutions.

    Args:
        channels (int): Input and output channels.
        hidden_channels (int): Hidden channels.
        act_cfg (dict): Activation config.
        drop (float): Dropout rate after each convolution.
    """

    def __init__(self, channels: int, hidden_channels: int, act_cfg: dict,
                 drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden_channels, 1)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Conv2d(hidden_channels, channels, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class RIFormerBlock(BaseModule):
    """One RIFormer block.

    Train form::

        x = x + drop_path(ls1 * (affine(norm1(x)) - norm1(x)))
        x = x + drop_path(ls2 * mlp(norm2(x)))

    Deploy form, the same function with everything folded::

        x = x + drop_path(norm_reparam(x))
        x = x + drop_path(fc2(act(fc1(normalise(x)))))

    With GN(num_groups=1) or LN2d and GELU, the deploy form runs
    channels-last with fused kernels (see
    :func:`~mmriformer.models.utils.onednn.riformer_block_fused`).

    Args:
        dim (int): Channels.
        mlp_ratio (float): Hidden channels of the MLP over ``dim``.
        norm_cfg (dict): Norm config.
        act_cfg (dict): Activation config.
        drop (float): Dropout rate in the MLP.
        drop_path (float): Stochastic depth rate.
        layer_scale_init_value (float): Initial layer scale.
        deploy (bool): Build the deploy form.
        with_cp (bool): Use gradient checkpointing.
    """

    def __init__(self,
                 dim: int,
                 mlp_ratio: float = 4.,
                 norm_cfg: dict = dict(type='GN', num_groups=1),
                 act_cfg: dict = dict(type='GELU'),
                 drop: float = 0.,
                 drop_path: float = 0.,
                 layer_scale_init_value: float = 1e-5,
                 deploy: bool = False,
                 with_cp: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.mlp_ratio = mlp_ratio
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        self.layer_scale_init_value = layer_scale_init_value
        self.deploy = False
        self.with_cp = with_cp
        self.stochastic = drop > 0 or drop_path > 0
        self.norm1 = build_norm_layer(norm_cfg, dim)[1]
        self.token_mixer = Affine(dim)
        self.norm2 = build_norm_layer(norm_cfg, dim)[1]
        self.mlp = ConvMLP(dim, int(dim * mlp_ratio), act_cfg, drop)
        self.drop_path = DropPath(
            drop_path) if drop_path > 0 else nn.Identity()
        self.layer_scale_1 = nn.Parameter(
            layer_scale_init_value * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(
            layer_scale_init_value * torch.ones(dim))
        if deploy:
            self._to_deploy_layers()

    def _to_deploy_layers(self) -> None:
        """Replace the train-form layers by the deploy-form ones, on the
        same device and dtype, in the same mode, frozen if they were."""
        ref = self.mlp.fc1.weight
        frozen = not self.norm1.weight.requires_grad
        del self.norm1, self.token_mixer, self.layer_scale_1, \
            self.layer_scale_2
        self.norm_reparam = build_norm_layer(self.norm_cfg, self.dim)[1].to(
            ref.device, ref.dtype)
        self.norm2 = build_affine_free_norm(self.norm_cfg, self.dim).to(
            ref.device, ref.dtype)
        self.norm_reparam.requires_grad_(not frozen)
        self.norm_reparam.train(self.training)
        self.norm2.train(self.training)
        # Channels-last weights, as the deploy activations are.
        self.to(memory_format=torch.channels_last)
        self.packed_fc1, self.packed_fc2 = PackedWeight(), PackedWeight()
        self.deploy = True
        self.fused = fused_norm_kind(self.norm_reparam, self.mlp.act)

    def switch_to_deploy(self) -> None:
        """Fold this block into its deploy form; outputs stay the same."""
        if self.deploy:
            return
        state = {k: v.detach() for k, v in self.state_dict().items()}
        fold_riformer_block_state(state)
        self._to_deploy_layers()
        self.load_state_dict(state)

    def init_as_folded_train_form(self, init_cfg) -> None:
        """Take the folded weights of a train-form block initialised by
        ``init_cfg``, so that a deploy block built from scratch starts with
        the train form's function (both branches scaled by the layer-scale
        init value), not with layer scales of 1.

        Args:
            init_cfg (dict | list[dict] | None): The backbone's init config.
        """
        twin = RIFormerBlock(
            self.dim, self.mlp_ratio, self.norm_cfg, self.act_cfg,
            layer_scale_init_value=self.layer_scale_init_value)
        if init_cfg:
            initialize(twin, copy.deepcopy(init_cfg))
        self.load_state_dict(twin.state_dict())  # a deploy block folds it

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        """Accept every form of checkpoint the module can represent.

        A deploy block folds train-form and mmpretrain deploy-form weights
        on load. A train block cannot unfold deploy weights, so it says so.
        """
        if self.deploy:
            fold_riformer_block_state(state_dict, prefix)
        elif prefix + 'norm_reparam.weight' in state_dict:
            raise ValueError(
                f'The checkpoint holds deploy-form RIFormer weights '
                f'({prefix}norm_reparam.*), which cannot be loaded into a '
                f'train-form block. Build the backbone with deploy=True.')
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        # Checkpoint whenever backward will need this block, also when its
        # input comes from frozen layers and needs no gradient itself.
        if self.with_cp and torch.is_grad_enabled() and (
                x.requires_grad
                or any(p.requires_grad for p in self.parameters())):
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)

    def _forward(self, x: Tensor) -> Tensor:
        if not self.deploy:
            y = self.norm1(x)
            x = x + self.drop_path(
                self.layer_scale_1[:, None, None] * self.token_mixer(y))
            return x + self.drop_path(
                self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))
        if self.fused is not None and not (self.training and self.stochastic):
            return riformer_block_fused(x, self.fused, self.norm_reparam,
                                        self.norm2, self.mlp.fc1,
                                        self.mlp.fc2, self.packed_fc1,
                                        self.packed_fc2)
        x = x + self.drop_path(self.norm_reparam(x))
        return x + self.drop_path(self.mlp(self.norm2(x)))


@MODELS.register_module()
class RIFormer(BaseModule):
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

    def train(self, mode: bool = True) -> 'RIFormer':
        """Set train mode, keeping frozen stages (and BN if norm_eval) in
        eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

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
