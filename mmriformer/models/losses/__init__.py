# Copyright (c) OpenMMLab. All rights reserved.
from .ddf_loss import DecoupledDistillationFocalLoss
from .fgl_loss import (FineGrainedLocalizationLoss,
                       fine_grained_localization_loss)
from .iou_aware_loss import IoUAwareClassificationLoss
from .logit_distillation import logit_distillation_loss
from .mal_loss import MatchabilityAwareLoss, matchability_aware_loss
from .varifocal_loss import RTDETRVarifocalLoss, varifocal_loss

__all__ = [
    'DecoupledDistillationFocalLoss', 'FineGrainedLocalizationLoss',
    'fine_grained_localization_loss', 'IoUAwareClassificationLoss',
    'logit_distillation_loss', 'MatchabilityAwareLoss',
    'matchability_aware_loss', 'RTDETRVarifocalLoss', 'varifocal_loss'
]
