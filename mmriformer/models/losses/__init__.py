# Copyright (c) OpenMMLab. All rights reserved.
from .varifocal_loss import RTDETRVarifocalLoss, varifocal_loss

__all__ = ['RTDETRVarifocalLoss', 'varifocal_loss']
