# Copyright (c) OpenMMLab. All rights reserved.
from typing import Dict, List, Optional

from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn
from torch.nn import GroupNorm, LayerNorm
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

NORMS = (_BatchNorm, _InstanceNorm, GroupNorm, LayerNorm)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DecayPolicyOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's constructor, where custom keys keep the decay policies.

    In ``DefaultOptimWrapperConstructor`` a parameter matched by a
    ``custom_keys`` entry ignores ``norm_decay_mult``, ``bias_decay_mult``
    and ``flat_decay_mult``: with ``custom_keys={'backbone':
    dict(lr_mult=0.1)}`` the backbone's norms and biases get the full weight
    decay. RT-DETR's recipe gives the backbone a lower learning rate and
    still no decay on its norms. Here a custom-keyed parameter takes the
    policy of its kind (norm, then bias, then any other 1-D parameter such
    as attention's ``in_proj_bias`` or a layer scale) unless its key sets
    ``decay_mult`` itself; everything else is mmengine's.
    """

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module: Optional[int] = None) -> None:
        """Add the parameter groups of ``module`` as mmengine does, then
        (once, at the top of the recursion) apply the decay policies to
        every group whose custom key did not set ``decay_mult``; unkeyed
        groups have them already and keep their values."""
        start = len(params)
        super().add_params(params, module, prefix, is_dcn_module)
        if prefix or self.base_wd is None:
            return
        policy = self._decay_mults(module)
        for group in params[start:]:
            if 'decay_mult' in group:
                continue
            mult = policy.get(id(group['params'][0]))
            if mult is not None:
                group['weight_decay'] = self.base_wd * mult

    def _decay_mults(self, model: nn.Module) -> Dict[int, float]:
        """The policy's decay multiplier of each parameter, by ``id``."""
        cfg = self.paramwise_cfg
        mults = {}
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                if isinstance(module, NORMS):
                    mult = cfg.get('norm_decay_mult')
                elif name == 'bias':
                    mult = cfg.get('bias_decay_mult')
                elif param.ndim == 1:
                    mult = cfg.get('flat_decay_mult')
                else:
                    mult = None
                mults[id(param)] = mult
        return mults
