# Copyright (c) OpenMMLab. All rights reserved.
"""Train mode for backbones with frozen stages and ``norm_eval``."""
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class FrozenStagesMixin:
    """``train()`` that keeps frozen stages, and with ``norm_eval`` every
    BatchNorm, in eval mode (as mmdet's ``ResNet`` does).

    For an ``nn.Module`` with a ``norm_eval`` attribute and a
    ``_freeze_stages()`` method that puts its frozen modules in eval mode
    (and stops their gradients). Put it before the module base class.
    """

    def train(self, mode: bool = True) -> nn.Module:
        """Set train mode, keeping frozen stages (and BN if norm_eval) in
        eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self
