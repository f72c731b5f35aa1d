# Copyright (c) OpenMMLab. All rights reserved.
"""Official RT-DETR weights in our model's layout.

Two sources are understood: HF transformers' ``RTDetrForObjectDetection``
(a ``save_pretrained`` folder) and lyuwenyu/RT-DETR's ``.pth`` files (v1
and v2). Everything but :func:`convert_checkpoint` is a pure function of a
state dict (and, for HF, of its ``config.json``):

- :mod:`.sources` reads a source into a flat state dict;
- :mod:`.hf_keys` and :mod:`.official_keys` rename the keys (rules in
  :mod:`.renaming`): HF's separate q/k/v projections become
  ``nn.MultiheadAttention``'s ``in_proj``, the padding row of the
  denoising label table and derived buffers (anchors, uniform point
  scales) are dropped, and frozen BatchNorms get their counters;
- :mod:`.variants` says which variant a state dict is, and its config;
- :mod:`.checks` explains, key by key, why weights do not fit a model;
- :mod:`.backbone_keys` maps ImageNet ResNet-vd backbones (official
  ``PResNet`` files, mmpretrain's ``ResNetV1d``) to our ``PResNet``.

The names produced are those of ``RTDETR`` with the ``PResNet`` backbone:
``backbone.stem.*``, ``backbone.layer{1-4}.*``, ``neck.*``,
``decoder_input_proj.*``, ``memory_proj.*`` (the official ``enc_output``),
``decoder.*``, ``bbox_head.cls_branches.i`` / ``reg_branches.i`` (``i =
num_layers`` is the official ``enc_score_head`` / ``enc_bbox_head``) and
``dn_query_generator.label_embedding``.
"""
from .checks import check_fit, check_hf_config, hf_class_names
from .convert import convert_checkpoint, convert_state
from .hf_keys import hf_to_ours
from .official_keys import official_to_ours, rename_official
from .sources import (UnknownLayoutError, detect_layout, load_source,
                      read_safetensors)
from .variants import (BASELINE_CONFIGS, describe_variant, pick_config,
                       repo_configs_dir, variant_name)

__all__ = [
    'BASELINE_CONFIGS', 'UnknownLayoutError', 'check_fit', 'check_hf_config',
    'convert_checkpoint', 'convert_state', 'describe_variant',
    'detect_layout', 'hf_class_names', 'hf_to_ours', 'load_source',
    'official_to_ours', 'pick_config', 'read_safetensors',
    'rename_official', 'repo_configs_dir', 'variant_name'
]
