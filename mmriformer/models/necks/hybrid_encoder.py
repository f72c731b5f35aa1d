# Copyright (c) OpenMMLab. All rights reserved.
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from ...utils.deprecation import renamed_kwargs
from ..layers.aifi_layer import AIFILayer
from ..layers.csp_rep_layer import CSPRepLayer
from ..layers.positional_encoding import build_2d_sincos_position_embedding
from ..layers.repvgg_block import RepVggBlock


@MODELS.register_module()
class HybridEncoder(BaseModule):
    """RT-DETR's efficient hybrid encoder, used as an mmdet neck.

    Three steps (RT-DETR, "DETRs Beat YOLOs on Real-time Object Detection"):

    1. Input projections: a 1x1 conv (no bias) and a norm per level, no
       activation, to ``embed_dims`` channels.
    2. AIFI: post-norm transformer encoder layers with a 2D sin-cos
       position embedding, on the levels in ``use_encoder_idx`` only (the
       stride-32 map by default).
    3. CCFM: a top-down FPN (lateral 1x1 Conv-Norm-Act, nearest upsample,
       concat, :class:`CSPRepLayer`) then a bottom-up PAN (3x3 stride-2
       Conv-Norm-Act, concat, :class:`CSPRepLayer`).

    Arguments take the names of mmdet's DETR layers (``embed_dims``,
    ``feedforward_channels``); the old ``hidden_dim`` and
    ``dim_feedforward`` still work in this release, with a deprecation
    warning.

    Args:
        in_channels (Sequence[int]): Channels of each input level, finest
            first: the backbone's out channels. Defaults to
            (512, 1024, 2048).
        feat_strides (Sequence[int]): Stride of each input level.
            Defaults to (8, 16, 32).
        embed_dims (int): Channels of the encoder and of every output.
            Defaults to 256.
        num_heads (int): Attention heads of AIFI. Defaults to 8.
        feedforward_channels (int): FFN hidden channels of AIFI.
            Defaults to 1024.
        dropout (float): Dropout rate of AIFI. Defaults to 0.
        enc_act_cfg (dict): FFN activation of AIFI. Defaults to
            ``dict(type='GELU')``.
        use_encoder_idx (Sequence[int]): Levels that AIFI runs on; negative
            values count from the last. Defaults to (2, ).
        num_encoder_layers (int): AIFI layers per level. Defaults to 1.
        pe_temperature (float): Temperature of the position embedding.
            Defaults to 10000.
        expansion (float): Hidden channels of each CSPRepLayer over
            ``embed_dims``. Defaults to 1.0.
        depth_mult (float): RepVGG blocks per CSPRepLayer are
            ``round(3 * depth_mult)``. Defaults to 1.0.
        act_cfg (dict): Activation of the CCFM convs. Defaults to
            ``dict(type='SiLU')``.
        norm_cfg (dict): Norm of every conv. Defaults to
            ``dict(type='BN')``.
        eval_spatial_size (Sequence[int], optional): Input image size
            (H, W) whose AIFI position embeddings are precomputed as
            non-persistent buffers ``pos_embed{idx}``, e.g. for a static
            export. Other sizes still work, computing them per forward.
            Defaults to None.
        deploy (bool): Build the RepVGG blocks in their fused deploy form,
            e.g. to load a deploy checkpoint. Defaults to False.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None: RT-DETR's initialisation (see
            :meth:`init_weights`).
    """

    @renamed_kwargs(
        hidden_dim='embed_dims', dim_feedforward='feedforward_channels')
    def __init__(self,
                 in_channels: Sequence[int] = (512, 1024, 2048),
                 feat_strides: Sequence[int] = (8, 16, 32),
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 feedforward_channels: int = 1024,
                 dropout: float = 0.,
                 enc_act_cfg: dict = dict(type='GELU'),
                 use_encoder_idx: Sequence[int] = (2, ),
                 num_encoder_layers: int = 1,
                 pe_temperature: float = 10000.,
                 expansion: float = 1.0,
                 depth_mult: float = 1.0,
                 act_cfg: dict = dict(type='SiLU'),
                 norm_cfg: dict = dict(type='BN'),
                 eval_spatial_size: Optional[Sequence[int]] = None,
                 deploy: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = list(in_channels)
        self.feat_strides = list(feat_strides)
        num_levels = len(self.in_channels)
        if len(self.feat_strides) != num_levels:
            raise ValueError(
                f'HybridEncoder feat_strides={self.feat_strides} must have '
                f'one stride per level of in_channels={self.in_channels}.')
        for idx in use_encoder_idx:
            if not -num_levels <= idx < num_levels:
                raise ValueError(
                    f'HybridEncoder use_encoder_idx={list(use_encoder_idx)} '
                    f'has {idx}, but in_channels={self.in_channels} gives '
                    f'levels 0..{num_levels - 1}.')
        self.use_encoder_idx = [idx % num_levels for idx in use_encoder_idx]
        if self.use_encoder_idx and embed_dims % 4 != 0:
            raise ValueError(
                f'HybridEncoder embed_dims={embed_dims} must be divisible '
                f'by 4 for the 2D sin-cos position embedding of AIFI.')
        self.embed_dims = embed_dims
        self.pe_temperature = pe_temperature
        self.eval_spatial_size = None if eval_spatial_size is None else \
            tuple(eval_spatial_size)
        self.out_channels = [embed_dims] * num_levels

        self.input_proj = nn.ModuleList([
            ConvModule(c, embed_dims, 1, norm_cfg=norm_cfg, act_cfg=None)
            for c in self.in_channels
        ])
        self.encoder = nn.ModuleList([
            nn.ModuleList([
                AIFILayer(
                    embed_dims,
                    num_heads,
                    feedforward_channels,
                    dropout=dropout,
                    act_cfg=enc_act_cfg) for _ in range(num_encoder_layers)
            ]) for _ in self.use_encoder_idx
        ])

        self.lateral_convs = nn.ModuleList()
        self.fpn_blocks = nn.ModuleList()
        self.downsample_convs = nn.ModuleList()
        self.pan_blocks = nn.ModuleList()
        for _ in range(num_levels - 1):
            lateral, fpn_block, downsample, pan_block = self._ccfm_level(
                expansion, depth_mult, norm_cfg, act_cfg, deploy)
            self.lateral_convs.append(lateral)
            self.fpn_blocks.append(fpn_block)
            self.downsample_convs.append(downsample)
            self.pan_blocks.append(pan_block)

        if self.eval_spatial_size is not None:
            for idx in self.use_encoder_idx:
                h, w = self._eval_feat_size(idx)
                self.register_buffer(
                    f'pos_embed{idx}',
                    build_2d_sincos_position_embedding(w, h, embed_dims,
                                                       pe_temperature),
                    persistent=False)

    def _ccfm_level(self, expansion: float, depth_mult: float,
                    norm_cfg: dict, act_cfg: dict,
                    deploy: bool) -> Tuple[nn.Module, ...]:
        """The CCFM modules between two adjacent levels.

        Subclasses with other fusion blocks or downsampling (D-FINE's)
        override this; the wiring of :meth:`forward` stays.

        Args:
            expansion (float): As in the class arguments.
            depth_mult (float): As in the class arguments.
            norm_cfg (dict): As in the class arguments.
            act_cfg (dict): As in the class arguments.
            deploy (bool): As in the class arguments.

        Returns:
            tuple[nn.Module]: The lateral conv, the top-down fusion block,
            the downsampling and the bottom-up fusion block. Fusion blocks
            take the concatenation of two levels (``2 * embed_dims``
            channels) to ``embed_dims``.
        """
        dims = self.embed_dims

        def fusion_block():
            return CSPRepLayer(
                dims * 2,
                dims,
                num_blocks=round(3 * depth_mult),
                expansion=expansion,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
                deploy=deploy)

        # Built in the order they are used, as RT-DETR does.
        lateral = ConvModule(
            dims, dims, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
        fpn_block = fusion_block()
        downsample = ConvModule(
            dims,
            dims,
            3,
            stride=2,
            padding=1,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg)
        return lateral, fpn_block, downsample, fusion_block()

    def _eval_feat_size(self, idx: int) -> Tuple[int, int]:
        """(h, w) of level ``idx`` for an ``eval_spatial_size`` input."""
        stride = self.feat_strides[idx]
        return (self.eval_spatial_size[0] // stride,
                self.eval_spatial_size[1] // stride)

    def _position_embedding(self, idx: int, h: int, w: int,
                            ref: Tensor) -> Tensor:
        """The (1, h * w, embed_dims) embedding of level ``idx``.

        Decided on static shapes only, so tracing and export see no
        data-dependent branch.
        """
        if self.eval_spatial_size is not None and \
                self._eval_feat_size(idx) == (h, w):
            pos = getattr(self, f'pos_embed{idx}')
        else:
            # Float64 models get a float64 embedding; others float32,
            # whatever their own precision.
            dtype = torch.float64 if ref.dtype == torch.float64 else \
                torch.float32
            pos = build_2d_sincos_position_embedding(
                w,
                h,
                self.embed_dims,
                self.pe_temperature,
                device=ref.device,
                dtype=dtype)
        return pos.to(ref.dtype)

    def _check_inputs(self, feats: Sequence[Tensor]) -> None:
        """Raise a ValueError naming the fix when ``feats`` do not fit."""
        shapes = [tuple(feat.shape) for feat in feats]
        if any(len(shape) != 4 for shape in shapes):
            raise ValueError(
                f'HybridEncoder expects (N, C, H, W) feature maps, got '
                f'shapes {shapes}.')
        channels = [shape[1] for shape in shapes]
        if channels != self.in_channels:
            raise ValueError(
                f'HybridEncoder in_channels={self.in_channels} but the '
                f'backbone gives channels {channels}; set in_channels to the '
                f"backbone's out channels (and feat_strides to their "
                f'strides).')

    def init_weights(self) -> None:
        """Initialise as RT-DETR does, unless ``init_cfg`` says otherwise.

        The official encoder keeps PyTorch's defaults: every convolution
        Kaiming-uniform with ``a = sqrt(5)`` (weights in ``+-1 /
        sqrt(fan_in)``), norms at 1 and 0, the attention as
        ``nn.MultiheadAttention`` and ``nn.Linear`` initialise themselves.
        mmcv's ``ConvModule`` instead draws its convolutions Kaiming-normal
        with ``fan_out`` (about three times the standard deviation), so
        they are reset here.
        """
        super().init_weights()
        if self.init_cfg is not None:
            return
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                module.reset_parameters()

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        """Encode and fuse the backbone features.

        Args:
            feats (Sequence[Tensor]): One map per level, finest first, of
                shape (N, in_channels[i], H_i, W_i), each level half the
                size of the previous one (rounded up).

        Returns:
            tuple[Tensor]: One map per level, of shape
            (N, embed_dims, H_i, W_i).
        """
        self._check_inputs(feats)
        proj_feats = [proj(feat) for proj, feat in zip(self.input_proj, feats)]

        for layers, idx in zip(self.encoder, self.use_encoder_idx):
            n, c, h, w = proj_feats[idx].shape
            tokens = proj_feats[idx].flatten(2).transpose(1, 2)  # (N, HW, C)
            pos = self._position_embedding(idx, h, w, tokens)
            for layer in layers:
                tokens = layer(tokens, pos)
            proj_feats[idx] = tokens.transpose(1, 2).reshape(n, c, h, w)

        # Top-down: each coarse map goes through its lateral conv, which
        # also replaces it as the input of the bottom-up path.
        inner_outs = [proj_feats[-1]]
        for i in range(len(proj_feats) - 1):
            feat_high = self.lateral_convs[i](inner_outs[0])
            inner_outs[0] = feat_high
            feat_low = proj_feats[-2 - i]
            # Nearest x2; the explicit size also fits odd map sizes.
            upsampled = F.interpolate(
                feat_high, size=feat_low.shape[-2:], mode='nearest')
            inner_outs.insert(
                0, self.fpn_blocks[i](torch.cat([upsampled, feat_low], 1)))

        outs = [inner_outs[0]]
        for i in range(len(proj_feats) - 1):
            downsampled = self.downsample_convs[i](outs[-1])
            outs.append(self.pan_blocks[i](torch.cat(
                [downsampled, inner_outs[i + 1]], 1)))
        return tuple(outs)

    @property
    def deploy(self) -> bool:
        """Whether the RepVGG blocks are in their fused deploy form.

        Read from the blocks, which :func:`switch_to_deploy` folds one by
        one.
        """
        return all(module.deploy for module in self.modules()
                   if isinstance(module, RepVggBlock))
