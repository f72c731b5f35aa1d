# Copyright (c) OpenMMLab. All rights reserved.
"""Official D-FINE weights in our models' layouts.

- :mod:`.backbone_keys` maps HF transformers' ``HGNetV2Backbone`` (alone,
  or inside ``DFineForObjectDetection`` under
  :data:`~.backbone_keys.HF_DFINE_BACKBONE_PREFIX`) to our ``HGNetV2``,
  whose keys are those of Peterande/D-FINE's ``HGNetv2``.
"""
from .backbone_keys import (HF_DFINE_BACKBONE_PREFIX, hf_hgnetv2_to_ours,
                            hgnetv2_to_ours)

__all__ = ['HF_DFINE_BACKBONE_PREFIX', 'hf_hgnetv2_to_ours', 'hgnetv2_to_ours']
