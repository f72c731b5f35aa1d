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
    """mmengine's constructor, where custom keys keep the norm and decay
    policies.

    In ``DefaultOptimWrapperConstructor`` a parameter matched by a
    ``custom_keys`` entry ignores ``norm_decay_mult``, ``bias_decay_mult``
    and ``flat_decay_mult``: with ``custom_keys={'backbone':
    dict(lr_mult=0.1)}`` the backbone's norms and biases get the full weight
    decay. RT-DETR's recipe gives the backbone a lower learning rate and
    still no decay on its norms. Here a custom-keyed parameter takes the
    policy of its kind (norm, then bias, then any other 1-D parameter such
    as attention's ``in_proj_bias`` or a layer scale) unless its key sets
    ``decay_mult`` itself; everything else is mmengine's.

    A key may also set ``norm_lr_mult``: the learning rate multiplier of
    the norm layers it matches, in place of its ``lr_mult``. DEIM's group
    ``'^(?=.*backbone)(?!.*norm).*$'`` lowers the lr of the backbone but
    not of its norms: ``custom_keys={'backbone': dict(lr_mult=0.1,
    norm_lr_mult=1.0)}``. mmengine cannot say this: a parameter takes the
    longest key found in its name, and no key of the backbone's norms is
    longer than ``'backbone'`` without naming each norm.
    """

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module: Optional[int] = None) -> None:
        """Add the parameter groups of ``module`` as mmengine does, then
        (once, at the top of the recursion) give the norms of a key with
        ``norm_lr_mult`` their lr and apply the decay policies to every
        group whose custom key did not set ``decay_mult``; unkeyed groups
        have them already and keep their values."""
        start = len(params)
        super().add_params(params, module, prefix, is_dcn_module)
        if prefix:
            return
        kinds = self._kinds(module)
        for group in params[start:]:
            kind = kinds[id(group['params'][0])]
            if kind == 'norm' and 'norm_lr_mult' in group:
                group['lr'] = self.base_lr * group['norm_lr_mult']
            if self.base_wd is None or kind is None or 'decay_mult' in group:
                continue
            mult = self.paramwise_cfg.get(f'{kind}_decay_mult')
            if mult is not None:
                group['weight_decay'] = self.base_wd * mult

    @staticmethod
    def _kinds(model: nn.Module) -> Dict[int, Optional[str]]:
        """The kind of each parameter, by ``id``: ``'norm'``, ``'bias'``,
        ``'flat'`` (another 1-D parameter) or None."""
        kinds = {}
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                if isinstance(module, NORMS):
                    kind = 'norm'
                elif name == 'bias':
                    kind = 'bias'
                elif param.ndim == 1:
                    kind = 'flat'
                else:
                    kind = None
                kinds[id(param)] = kind
        return kinds
