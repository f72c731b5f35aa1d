# Copyright (c) OpenMMLab. All rights reserved.
"""HGNetv2 backbone weights in our ``HGNetV2``'s keys.

Two layouts of the same network are understood:

- ``'official'``: Peterande/D-FINE's ``HGNetv2`` (its ImageNet
  ``PPHGNetV2_B*_stage1.pth`` files and the ``backbone.*`` weights of its
  detectors), which is also ours: ``stem.stem{1,2a,2b,3,4}.{conv,bn,lab}``,
  ``stages.i.downsample.{conv,bn}``,
  ``stages.i.blocks.j.layers.k[.conv{1,2}].{conv,bn,lab}`` and
  ``stages.i.blocks.j.aggregation.{0,1}.{conv,bn,lab}``. D-FINE-L and X
  freeze their norms, which then save no ``num_batches_tracked``;
- ``'hf'``: HF transformers' ``HGNetV2Backbone``: ``embedder.*`` for
  ``stem.*``, ``encoder.stages.*`` for ``stages.*``, and ``convolution`` /
  ``normalization`` for ``conv`` / ``bn``. ``DFineForObjectDetection``
  holds it under :data:`HF_DFINE_BACKBONE_PREFIX`, with frozen norms.
"""
import re

from ..rtdetr.renaming import add_norm_counters
from ..rtdetr.sources import StateDict, UnknownLayoutError

OFFICIAL, HF = 'official', 'hf'
# Where DFineForObjectDetection keeps its HGNetV2Backbone.
HF_DFINE_BACKBONE_PREFIX = 'model.backbone.model.'
HF_PART = {'convolution': 'conv', 'normalization': 'bn', 'lab': 'lab'}
# A conv-norm-act unit in HF's names, below the stem or a stage.
_UNIT = r'\.(convolution|normalization|lab)\.(\w+)'
_HF_STEM = re.compile(r'embedder\.(stem(?:1|2a|2b|3|4))' + _UNIT)
_HF_STAGE = re.compile(
    r'encoder\.stages\.(\d+\.(?:downsample|blocks\.\d+\.(?:layers\.\d+'
    r'(?:\.conv[12])?|aggregation\.[01])))' + _UNIT)


def hgnetv2_layout(state: StateDict) -> str:
    """Which HGNetv2 layout ``state`` (backbone keys, no prefix) has.

    Returns:
        str: ``'official'`` or ``'hf'``.

    Raises:
        UnknownLayoutError: It has neither.
    """
    if any(k.startswith(('stem.stem1.', 'stages.')) for k in state):
        return OFFICIAL
    if any(k.startswith(('embedder.', 'encoder.stages.')) for k in state):
        return HF
    raise UnknownLayoutError(
        f"Unknown HGNetv2 layout: the keys (e.g. {list(state)[:3]}) are "
        f"neither D-FINE's HGNetv2 ('stem.stem1.*', 'stages.*') nor HF's "
        f"HGNetV2Backbone ('embedder.*', 'encoder.stages.*'); with a "
        f"detector checkpoint, set init_cfg.prefix (D-FINE: 'backbone.', "
        f"HF D-FINE: {HF_DFINE_BACKBONE_PREFIX!r}).")


def hf_hgnetv2_to_ours(state: StateDict) -> StateDict:
    """Rename an HF ``HGNetV2Backbone`` state dict (see the module doc).

    Frozen norms save no counter: ``num_batches_tracked`` is added as 0.

    Args:
        state (dict[str, Tensor]): HF keys without prefix.

    Returns:
        dict[str, Tensor]: Our keys.

    Raises:
        UnknownLayoutError: Keys have no counterpart (naming them).
    """
    out, unknown = {}, []
    for key, value in state.items():
        stem, stage = _HF_STEM.fullmatch(key), _HF_STAGE.fullmatch(key)
        found = stem or stage
        if found is None:
            unknown.append(key)
            continue
        where = f'stem.{found[1]}' if stem else f'stages.{found[1]}'
        out[f'{where}.{HF_PART[found[2]]}.{found[3]}'] = value
    if unknown:
        raise UnknownLayoutError(
            f'{len(unknown)} HF HGNetV2 keys have no counterpart in our '
            f'HGNetV2 (a classifier head, or another model): '
            f'{", ".join(unknown[:8])}{" ..." if len(unknown) > 8 else ""}')
    return add_norm_counters(out)


def hgnetv2_to_ours(state: StateDict) -> StateDict:
    """Any layout of :func:`hgnetv2_layout` in our keys, with a
    ``num_batches_tracked`` for every norm.

    Raises:
        UnknownLayoutError: An unknown layout or key.
    """
    if hgnetv2_layout(state) == HF:
        return hf_hgnetv2_to_ours(state)
    return add_norm_counters(dict(state))
