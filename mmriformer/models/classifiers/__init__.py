# Copyright (c) OpenMMLab. All rights reserved.
from .module_imitation_classifier import ModuleImitationClassifier

__all__ = ['ModuleImitationClassifier']
