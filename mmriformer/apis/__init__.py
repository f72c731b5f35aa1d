# Copyright (c) OpenMMLab. All rights reserved.
from .reparameterize import build_model, reparameterize

__all__ = ['build_model', 'reparameterize']
