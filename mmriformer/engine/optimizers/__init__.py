# Copyright (c) OpenMMLab. All rights reserved.
from .autocast_optim_wrapper import AutocastOptimWrapper
from .decay_policy_constructor import DecayPolicyOptimWrapperConstructor

__all__ = ['AutocastOptimWrapper', 'DecayPolicyOptimWrapperConstructor']
