# Copyright (c) OpenMMLab. All rights reserved.
from .aifi_layer import AIFILayer
from .csp_rep_layer import CSPRepLayer
from .mlp import MLP
from .ms_deform_attn import MSDeformableAttention, multi_scale_deformable_attn
from .norm import LayerNorm2d
from .positional_encoding import build_2d_sincos_position_embedding
from .rep_conv import RepVggBlock, fold_conv_module
from .rtdetr_decoder import RTDETRDecoder, RTDETRDecoderLayer, inverse_sigmoid

__all__ = [
    'LayerNorm2d', 'MLP', 'MSDeformableAttention',
    'multi_scale_deformable_attn', 'RTDETRDecoder', 'RTDETRDecoderLayer',
    'inverse_sigmoid', 'AIFILayer', 'CSPRepLayer', 'RepVggBlock',
    'fold_conv_module', 'build_2d_sincos_position_embedding'
]
