# Copyright (c) OpenMMLab. All rights reserved.
from torch import nn


def switch_to_deploy(model: nn.Module) -> nn.Module:
    """Switch every submodule that has ``switch_to_deploy()`` to deploy form.

    Works on any model (a bare backbone, an mmdet detector, an mmpretrain
    classifier): each re-parameterisable module folds itself; modules that
    are already in deploy form are left as they are.

    Args:
        model (nn.Module): The model, changed in place.

    Returns:
        nn.Module: The same model, for chaining.
    """
    for module in list(model.modules()):
        switch = getattr(module, 'switch_to_deploy', None)
        if callable(switch):
            switch()
    return model
