# Copyright (c) OpenMMLab. All rights reserved.
"""Official D-FINE weights in our models' layouts.

- :mod:`.backbone_keys` maps HF transformers' ``HGNetV2Backbone`` (alone,
  or inside ``DFineForObjectDetection`` under
  :data:`~.backbone_keys.HF_DFINE_BACKBONE_PREFIX`) to our ``HGNetV2``,
  whose keys are those of Peterande/D-FINE's ``HGNetv2``;
- :mod:`.decoder_keys` maps HF's ``DFineDecoder`` (under
  :data:`~.decoder_keys.HF_DFINE_DECODER_PREFIX`) to our ``DFineDecoder``;
- :mod:`.encoder_keys` maps HF's input projections and
  ``DFineHybridEncoder`` to our ``DFineHybridEncoder``.
"""
from .backbone_keys import (HF_DFINE_BACKBONE_PREFIX, hf_hgnetv2_to_ours,
                            hgnetv2_to_ours)
from .decoder_keys import HF_DFINE_DECODER_PREFIX, hf_dfine_decoder_to_ours
from .encoder_keys import hf_dfine_encoder_to_ours

__all__ = [
    'HF_DFINE_BACKBONE_PREFIX', 'HF_DFINE_DECODER_PREFIX',
    'hf_dfine_decoder_to_ours', 'hf_dfine_encoder_to_ours',
    'hf_hgnetv2_to_ours', 'hgnetv2_to_ours'
]
