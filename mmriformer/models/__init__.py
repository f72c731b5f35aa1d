# Copyright (c) OpenMMLab. All rights reserved.
from .backbones import HGNetV2, PResNet, RIFormer
from .classifiers import ModuleImitationClassifier
from .data_preprocessors import BatchRandomChoiceResize, DEIMBatchMixUp
from .dense_heads import RTDETRHead
from .detectors import RTDETR
from .layers import LayerNorm2d, RIFormerBlock
from .losses import MatchabilityAwareLoss, RTDETRVarifocalLoss
from .necks import HybridEncoder
from .utils import switch_to_deploy

__all__ = [
    'BatchRandomChoiceResize', 'DEIMBatchMixUp', 'HGNetV2', 'PResNet',
    'RIFormer', 'RIFormerBlock', 'RTDETRHead', 'RTDETR', 'LayerNorm2d',
    'RTDETRVarifocalLoss', 'MatchabilityAwareLoss', 'HybridEncoder',
    'ModuleImitationClassifier', 'switch_to_deploy'
]
