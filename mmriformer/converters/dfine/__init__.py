# Copyright (c) OpenMMLab. All rights reserved.
"""Official D-FINE weights in our models' layouts.

- :mod:`.backbone_keys` maps HF transformers' ``HGNetV2Backbone`` (alone,
  or inside ``DFineForObjectDetection`` under
  :data:`~.backbone_keys.HF_DFINE_BACKBONE_PREFIX`) to our ``HGNetV2``,
  whose keys are those of Peterande/D-FINE's ``HGNetv2``;
- :mod:`.decoder_keys` maps HF's ``DFineDecoder`` (under
  :data:`~.decoder_keys.HF_DFINE_DECODER_PREFIX`) to our ``DFineDecoder``;
- :mod:`.encoder_keys` maps HF's input projections and
  ``DFineHybridEncoder`` to our ``DFineHybridEncoder``;
- :mod:`.model_keys` maps whole detectors, HF's
  ``DFineForObjectDetection`` and Peterande/D-FINE's (and DEIM's)
  ``DFINE``, to our ``DFINE``;
- :mod:`.variants` says which official size a converted state dict is,
  and its config.

:func:`mmriformer.converters.rtdetr.convert_checkpoint` (and
``tools/model_converters/rtdetr_official.py``) converts D-FINE files too.
"""
from .backbone_keys import (HF_DFINE_BACKBONE_PREFIX, hf_hgnetv2_to_ours,
                            hgnetv2_to_ours)
from .decoder_keys import HF_DFINE_DECODER_PREFIX, hf_dfine_decoder_to_ours
from .encoder_keys import hf_dfine_encoder_to_ours
from .model_keys import hf_dfine_to_ours, official_dfine_to_ours
from .variants import (DFINE_CONFIGS, check_hf_dfine_config,
                       describe_dfine_variant, dfine_variant_name,
                       pick_dfine_config)

__all__ = [
    'DFINE_CONFIGS', 'HF_DFINE_BACKBONE_PREFIX', 'HF_DFINE_DECODER_PREFIX',
    'check_hf_dfine_config', 'describe_dfine_variant', 'dfine_variant_name',
    'hf_dfine_decoder_to_ours', 'hf_dfine_encoder_to_ours',
    'hf_dfine_to_ours', 'hf_hgnetv2_to_ours', 'hgnetv2_to_ours',
    'official_dfine_to_ours', 'pick_dfine_config'
]
