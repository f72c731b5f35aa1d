# Copyright (c) OpenMMLab. All rights reserved.
from .detections import topk_detections
from .edge_distances import box_to_distance, distance_to_box
from .fdr_weighting import (distance_to_bins, distribution_integral,
                            weighting_function)
from .frozen_stages import FrozenStagesMixin
from .precision import at_least_float32
from .reparameterize import (fold_affine_into_norm, fold_conv_module,
                             fold_norm_affine_into_conv, pad_1x1_to_3x3,
                             reparam_leaves, scale_conv_output, scale_norm,
                             switch_to_deploy, unknown_keys_of_leaves)
from .teacher_weights import TeacherWeights, teacher_weights_for_student
from .unfit_weights import (UnfitWeightsMixin, describe_unfit,
                            note_unfit_weights_hook)

__all__ = [
    'at_least_float32', 'box_to_distance', 'distance_to_bins',
    'distance_to_box', 'distribution_integral', 'weighting_function',
    'FrozenStagesMixin', 'fold_affine_into_norm', 'fold_conv_module',
    'fold_norm_affine_into_conv', 'pad_1x1_to_3x3', 'reparam_leaves',
    'scale_conv_output', 'scale_norm', 'switch_to_deploy', 'TeacherWeights',
    'teacher_weights_for_student', 'topk_detections', 'unknown_keys_of_leaves',
    'UnfitWeightsMixin', 'describe_unfit', 'note_unfit_weights_hook'
]
