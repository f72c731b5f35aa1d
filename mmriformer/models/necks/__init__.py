# Copyright (c) OpenMMLab. All rights reserved.
from .hybrid_encoder import HybridEncoder

__all__ = ['HybridEncoder']
