# Copyright (c) OpenMMLab. All rights reserved.
from typing import Tuple

from mmcv.cnn import ConvModule
from mmdet.registry import MODELS
from torch import nn

from ..layers.rep_ncsp_elan4 import RepNCSPELAN4
from ..layers.sc_down import SCDown
from .hybrid_encoder import HybridEncoder


@MODELS.register_module()
class DFineHybridEncoder(HybridEncoder):
    """D-FINE's lighter hybrid encoder, used as an mmdet neck.

    RT-DETR's encoder (:class:`HybridEncoder`: input projections, AIFI,
    the same CCFM wiring) with D-FINE's CCFM modules:

    - lateral convs: 1x1 Conv-Norm without activation;
    - fusion blocks: :class:`RepNCSPELAN4` (``cv1`` of
      ``2 * embed_dims`` channels, branches of
      ``round(expansion * embed_dims // 2)`` channels, each with
      ``round(3 * depth_mult)`` RepVGG blocks);
    - downsampling: :class:`SCDown` (1x1 then depth-wise 3x3 stride 2),
      held in a one-module ``nn.Sequential`` as D-FINE holds it.

    State-dict keys are those of D-FINE's ``HybridEncoder``, with
    mmcv's ``bn`` for ``norm`` and ``encoder.i.j`` for
    ``encoder.i.layers.j``, as :class:`HybridEncoder`'s are RT-DETR's.

    The sizes of the official configs (``configs/dfine/*.yml``):

    ====  =================  =====  ===========  =======  =========  ====
    size  in_channels        embed  feedforward  encoder  expansion  dm
    ====  =================  =====  ===========  =======  =========  ====
    N     (512, 1024)        128    512          (1, )    0.34       0.5
    S     (256, 512, 1024)   256    1024         (2, )    0.5        0.34
    M     (384, 768, 1536)   256    1024         (2, )    1.0        0.67
    L     (512, 1024, 2048)  256    1024         (2, )    1.0        1.0
    X     (512, 1024, 2048)  384    2048         (2, )    1.0        1.0
    ====  =================  =====  ===========  =======  =========  ====

    (``embed`` is ``embed_dims``, ``encoder`` ``use_encoder_idx``, ``dm``
    ``depth_mult``; N has two levels, ``feat_strides=(16, 32)``.)

    Args:
        As :class:`HybridEncoder`, except:
        expansion (float): Branch channels of each RepNCSPELAN4 over
            ``embed_dims / 2``. Defaults to 1.0.
        depth_mult (float): RepVGG blocks per CSPRepLayer of a
            RepNCSPELAN4 are ``round(3 * depth_mult)``. Defaults to 1.0.
    """

    def _ccfm_level(self, expansion: float, depth_mult: float,
                    norm_cfg: dict, act_cfg: dict,
                    deploy: bool) -> Tuple[nn.Module, ...]:
        """D-FINE's CCFM modules between two adjacent levels (see
        :meth:`HybridEncoder._ccfm_level`)."""
        dims = self.embed_dims
        # D-FINE's rounding: (expansion * dims) // 2, then round.
        branch_channels = round(expansion * dims // 2)
        if branch_channels < 1:
            raise ValueError(
                f'DFineHybridEncoder expansion={expansion} with embed_dims='
                f'{dims} gives {branch_channels} branch channels; raise '
                f'expansion.')

        def fusion_block():
            return RepNCSPELAN4(
                dims * 2,
                dims,
                dims * 2,
                branch_channels,
                num_blocks=round(3 * depth_mult),
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
                deploy=deploy)

        lateral = ConvModule(dims, dims, 1, norm_cfg=norm_cfg, act_cfg=None)
        fpn_block = fusion_block()
        downsample = nn.Sequential(SCDown(dims, dims, 3, 2, norm_cfg))
        return lateral, fpn_block, downsample, fusion_block()
