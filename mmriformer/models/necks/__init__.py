# Copyright (c) OpenMMLab. All rights reserved.
from .dfine_hybrid_encoder import DFineHybridEncoder
from .hybrid_encoder import HybridEncoder

__all__ = ['HybridEncoder', 'DFineHybridEncoder']
