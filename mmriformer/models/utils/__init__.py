# Copyright (c) OpenMMLab. All rights reserved.
from .conv_fusion import fuse_conv_bn, pad_1x1_to_3x3
from .deploy import switch_to_deploy
from .precision import at_least_float32
from .reparam import (fold_affine_into_norm, fold_norm_affine_into_conv,
                      scale_conv_output, scale_norm)

__all__ = [
    'switch_to_deploy', 'fold_affine_into_norm', 'fold_norm_affine_into_conv',
    'scale_conv_output', 'scale_norm', 'fuse_conv_bn', 'pad_1x1_to_3x3',
    'at_least_float32'
]
