# Copyright (c) OpenMMLab. All rights reserved.
"""The block of RIFormer, in train and deploy form.

Train form: the keys and outputs of mmpretrain's ``RIFormerBlock``. Deploy
form (``deploy=True`` or :meth:`RIFormerBlock.switch_to_deploy`): a
normalisation plus two 1x1 convolutions; the affine token mixer, both layer
scales and the second norm's affine are folded away.
"""
import copy

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmcv.cnn.bricks import DropPath
from mmengine.model import BaseModule, initialize
from torch import Tensor, nn

from ...converters.riformer import (convert_riformer_block_state,
                                    fold_riformer_block_state)
from ..utils.onednn import (PackedWeight, exporting, fused_norm_kind,
                            riformer_block_fused)
from .norm import build_affine_free_norm


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
    :func:`~mmriformer.models.utils.onednn.riformer_block_fused`), except
    in an exported graph: it has no memory formats, so the token views of
    the channels-last path would become transposes around each 1x1
    convolution; it keeps the NCHW convolutions instead.

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

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        """Take every checkpoint form the block can represent (see
        :mod:`mmriformer.converters.riformer`)."""
        convert_riformer_block_state(state_dict, prefix, self.deploy)
        super()._load_from_state_dict(state_dict, prefix, *args)

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
        if self.fused is not None and not exporting() and not (
                self.training and self.stochastic):
            return riformer_block_fused(x, self.fused, self.norm_reparam,
                                        self.norm2, self.mlp.fc1,
                                        self.mlp.fc2, self.packed_fc1,
                                        self.packed_fc2)
        x = x + self.drop_path(self.norm_reparam(x))
        return x + self.drop_path(self.mlp(self.norm2(x)))
