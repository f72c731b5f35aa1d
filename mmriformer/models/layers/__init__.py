# Copyright (c) OpenMMLab. All rights reserved.
from .aifi_layer import AIFILayer
from .csp_rep_layer import CSPRepLayer
from .decoder_input_proj import DecoderInputProjection
from .denoising import RTDETRCdnQueryGenerator
from .dfine_decoder import DFineDecoder, DFineDecoderOutput
from .gated_residual import GatedResidual
from .lqe import LocationQualityEstimator
from .mlp import MLP
from .ms_deform_attn import (MSDeformableAttention,
                             multi_scale_deformable_attn,
                             multi_scale_deformable_attn_discrete)
from .norm import (LayerNorm2d, ReductionGroupNorm, build_affine_free_norm,
                   to_reduction_group_norms)
from .positional_encoding import build_2d_sincos_position_embedding
from .rep_ncsp_elan4 import RepNCSPELAN4
from .repvgg_block import RepVggBlock
from .riformer_block import RIFormerBlock
from .rtdetr_decoder import RTDETRDecoder, RTDETRDecoderLayer
from .sc_down import SCDown

__all__ = [
    'LayerNorm2d', 'ReductionGroupNorm', 'build_affine_free_norm',
    'to_reduction_group_norms', 'MLP', 'MSDeformableAttention',
    'multi_scale_deformable_attn', 'multi_scale_deformable_attn_discrete',
    'RTDETRDecoder', 'RTDETRDecoderLayer', 'DFineDecoder',
    'DFineDecoderOutput', 'GatedResidual', 'LocationQualityEstimator',
    'AIFILayer', 'CSPRepLayer', 'DecoderInputProjection',
    'RTDETRCdnQueryGenerator', 'RepVggBlock', 'RIFormerBlock',
    'build_2d_sincos_position_embedding', 'RepNCSPELAN4', 'SCDown'
]
