# Copyright (c) OpenMMLab. All rights reserved.
"""D-FINE (Peng et al., "D-FINE: Redefine Regression Task in DETRs as
Fine-grained Distribution Refinement", ICLR 2025).

RT-DETR's detector with :class:`DFineDecoder` (boxes refined as edge
distributions) and :class:`DFineHead` (its branches and GO-LSD losses).
"""
from typing import Dict, Optional

from mmdet.registry import MODELS
from torch import Tensor

from ..layers import DFineDecoder
from ..layers.ms_deform_attn import SpatialShapes
from .rtdetr import RTDETR


@MODELS.register_module()
class DFINE(RTDETR):
    """D-FINE detector.

    Args: as :class:`RTDETR`, with ``decoder`` the keyword arguments of
    :class:`DFineDecoder` and ``bbox_head`` a :class:`DFineHead` of the
    decoder's ``reg_max``.
    """

    decoder_type = DFineDecoder

    def _init_layers(self) -> None:
        """RT-DETR's layers with D-FINE's decoder.

        Raises:
            ValueError: The head's ``reg_max`` is not the decoder's.
        """
        super()._init_layers()
        head_reg_max = getattr(self.bbox_head, 'reg_max', None)
        if head_reg_max != self.decoder.reg_max:
            raise ValueError(
                f'bbox_head.reg_max={head_reg_max} but decoder.reg_max='
                f'{self.decoder.reg_max}; use a DFineHead with the '
                f"decoder's reg_max.")

    def forward_decoder(self,
                        query: Tensor,
                        reference_points: Tensor,
                        memory: Tensor,
                        spatial_shapes: SpatialShapes,
                        attn_mask: Optional[Tensor] = None) -> Dict:
        """Run the decoder with the head's branches.

        Returns:
            dict: The per-layer ``all_layers_cls_scores``,
            ``all_layers_bbox_preds`` and ``all_layers_corners``; the
            ``initial_boxes``, the pre-bbox head's ``pre_cls_scores`` and
            ``pre_bbox_preds``, and the decoder's ``up`` and ``reg_scale``
            (see :class:`DFineDecoderOutput`), which the loss needs.
        """
        out = self.decoder(query,
                           reference_points,
                           memory,
                           spatial_shapes,
                           reg_branches=self.bbox_head.reg_branches,
                           cls_branches=self.bbox_head.cls_branches,
                           attn_mask=attn_mask)
        return dict(all_layers_cls_scores=out.logits,
                    all_layers_bbox_preds=out.boxes,
                    all_layers_corners=out.corners,
                    initial_boxes=out.initial_boxes,
                    pre_cls_scores=out.pre_logits,
                    pre_bbox_preds=out.pre_boxes,
                    up=self.decoder.up,
                    reg_scale=self.decoder.reg_scale)
