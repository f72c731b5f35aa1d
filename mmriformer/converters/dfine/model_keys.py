# Copyright (c) OpenMMLab. All rights reserved.
"""Whole D-FINE (and DEIM-D-FINE) detectors in our ``DFINE``'s keys.

Two layouts are understood:

- ``'hf_dfine'``: HF transformers' ``DFineForObjectDetection``
  (``ustc-community/dfine-*``). The backbone, the input projections with
  the encoder, and the decoder go through the part maps of
  :mod:`.backbone_keys`, :mod:`.encoder_keys` and :mod:`.decoder_keys`;
  the heads that HF attaches to its decoder (``class_embed.i``,
  ``bbox_embed.i``, saved under ``model.decoder.`` or at the top level as
  ``save_pretrained`` ties them) are our ``bbox_head`` branches ``i``,
  and ``enc_score_head`` / ``enc_bbox_head`` the branches ``num_layers``;
  ``enc_output`` is ``memory_proj`` and ``denoising_class_embed`` (less
  its padding row) the denoiser's label table;
- ``'official_dfine'``: Peterande/D-FINE's and Intellindust-AI-Lab/DEIM's
  ``DFINE`` (the same module names): ``backbone.*`` is ours already;
  ``encoder.*`` is ours (``neck.*``) with ``norm`` for ``bn`` and
  ``encoder.encoder.i.layers.j`` for ``encoder.i.j``;
  ``decoder.decoder.{layers,lqe_layers}`` and ``decoder.{query_pos_head,
  pre_bbox_head}`` are our decoder's, ``decoder.dec_score_head`` /
  ``dec_bbox_head`` (and ``enc_*``) the head's branches.
  ``up`` and ``reg_scale`` are saved twice (``decoder.`` and
  ``decoder.decoder.``) and must agree; the anchors of a fixed eval size
  are recomputed per input here and dropped.

Both keep ``num_points_scale`` (``1 / n`` for each of a level's ``n``
points), which is checked against a table of that form and dropped: our
attention holds the points per level as ``num_points``.
"""
from typing import Optional

import torch

from ..rtdetr.renaming import (DERIVED, apply_rules, count_indices, finish,
                               reg_branch_key)
from ..rtdetr.sources import StateDict, UnknownLayoutError
from .backbone_keys import HF_DFINE_BACKBONE_PREFIX, hf_hgnetv2_to_ours
from .decoder_keys import (HF_DFINE_DECODER_PREFIX, drop_points_scales,
                           hf_dfine_decoder_to_ours)
from .encoder_keys import hf_dfine_encoder_to_ours

# HF's decoder-layer heads, tied: at the top level or under model.decoder.
_HF_HEAD = r'(?:model\.decoder\.)?'


def _head_rules(num_layers: int, prefix: str, names: dict) -> list:
    """Rules for the head branches and the encoder-side layers.

    Args:
        num_layers (int): Decoder layers (the index of the encoder heads).
        prefix (str): The source's prefix of these modules (regex).
        names (dict): The source's names of ``enc_output``'s Linear and
            LayerNorm (``'0'``/``'1'`` or ``'proj'``/``'norm'``).
    """
    return [
        (prefix + rf'enc_output\.{names["linear"]}\.(weight|bias)',
         r'memory_proj.0.\1'),
        (prefix + rf'enc_output\.{names["norm"]}\.(weight|bias)',
         r'memory_proj.1.\1'),
        (prefix + r'enc_score_head\.(weight|bias)',
         f'bbox_head.cls_branches.{num_layers}.\\1'),
        (prefix + r'enc_bbox_head\.layers\.(\d)\.(weight|bias)',
         lambda m: reg_branch_key(num_layers, m[1], m[2])),
        (prefix + r'denoising_class_embed\.weight',
         'dn_query_generator.label_embedding.weight'),
    ]


def _prefixed(state: StateDict, prefix: str) -> StateDict:
    """``state`` with ``prefix`` before every key."""
    return {prefix + k: v for k, v in state.items()}


def _decoder_layers(state: StateDict, pattern: str) -> int:
    """The number of decoder layers that ``pattern`` counts.

    Raises:
        UnknownLayoutError: There are none.
    """
    layers = count_indices(state, pattern)
    if not layers:
        raise UnknownLayoutError(
            f'No decoder layers ({pattern!r}) among the keys (e.g. '
            f'{list(state)[:3]}): not a whole D-FINE detector.')
    return layers


def hf_dfine_to_ours(state: StateDict) -> StateDict:
    """Convert an HF ``DFineForObjectDetection`` state dict.

    Args:
        state (dict[str, Tensor]): HF keys, as ``save_pretrained`` writes
            them (or as ``state_dict()`` gives them, with both copies of
            the tied heads).

    Returns:
        dict[str, Tensor]: Our ``DFINE``'s keys.

    Raises:
        UnknownLayoutError: A key has no counterpart (naming it), or the
            two copies of a tied head differ.
    """
    decoder_prefix = HF_DFINE_DECODER_PREFIX
    num_layers = _decoder_layers(state, r'model\.decoder\.layers\.(\d+)\.')
    parts = dict(backbone={}, encoder={}, decoder={}, rest={})
    for key, value in state.items():
        if key.startswith(HF_DFINE_BACKBONE_PREFIX):
            parts['backbone'][key[len(HF_DFINE_BACKBONE_PREFIX):]] = value
        elif key.startswith(('model.encoder_input_proj.', 'model.encoder.')):
            parts['encoder'][key[len('model.'):]] = value
        elif key.startswith(decoder_prefix) and not key.startswith(
                (decoder_prefix + 'class_embed.',
                 decoder_prefix + 'bbox_embed.')):
            parts['decoder'][key[len(decoder_prefix):]] = value
        else:
            parts['rest'][key] = value
    rules = [
        (_HF_HEAD + r'class_embed\.(\d+)\.(weight|bias)',
         r'bbox_head.cls_branches.\1.\2'),
        (_HF_HEAD + r'bbox_embed\.(\d+)\.layers\.(\d)\.(weight|bias)',
         lambda m: reg_branch_key(m[1], m[2], m[3])),
        *_head_rules(num_layers, r'model\.', dict(linear='0', norm='1')),
        (r'model\.decoder_input_proj\.(\d+)\.0\.weight',
         r'decoder_input_proj.\1.conv.weight'),
        (r'model\.decoder_input_proj\.(\d+)\.1\.(\w+)',
         r'decoder_input_proj.\1.bn.\2'),
    ]
    out = _prefixed(hf_hgnetv2_to_ours(parts['backbone']), 'backbone.')
    out.update(
        _prefixed(hf_dfine_encoder_to_ours(parts['encoder']), 'neck.'))
    out.update(
        _prefixed(hf_dfine_decoder_to_ours(parts['decoder']), 'decoder.'))
    rest = _merge_tied(parts['rest'])
    num_classes = _num_classes(rest, 'model.enc_score_head.weight')
    out.update(finish(apply_rules(rest, rules, 'HF D-FINE'), num_classes))
    return out


def _merge_tied(state: StateDict) -> StateDict:
    """One copy of each head that HF ties (``class_embed`` and
    ``model.decoder.class_embed``, likewise ``bbox_embed``).

    Raises:
        UnknownLayoutError: The two copies differ.
    """
    out = {}
    for key, value in state.items():
        if key.startswith(('class_embed.', 'bbox_embed.')):
            twin = HF_DFINE_DECODER_PREFIX + key
            if twin in state:
                if not torch.equal(state[twin], value):
                    raise UnknownLayoutError(
                        f'{key} and {twin} should be one tied tensor but '
                        f'differ; the file is inconsistent.')
                continue
        out[key] = value
    return out


def _num_classes(state: StateDict, key: str) -> Optional[int]:
    """The rows of the encoder's score head at ``key``, if present."""
    return state[key].shape[0] if key in state else None


# Peterande/D-FINE's names of the hybrid encoder's Conv-Norm units.
_OFFICIAL_ENCODER_RULES = [
    (r'encoder\.input_proj\.(\d+)\.conv\.weight',
     r'neck.input_proj.\1.conv.weight'),
    (r'encoder\.input_proj\.(\d+)\.norm\.(\w+)', r'neck.input_proj.\1.bn.\2'),
    (r'encoder\.encoder\.(\d+)\.layers\.(\d+)\.(.+)',
     r'neck.encoder.\1.\2.\3'),
    (r'encoder\.((?:lateral_convs|fpn_blocks|pan_blocks|downsample_convs)'
     r'\.[\w.]+)\.conv\.weight', r'neck.\1.conv.weight'),
    (r'encoder\.((?:lateral_convs|fpn_blocks|pan_blocks|downsample_convs)'
     r'\.[\w.]+)\.norm\.(\w+)', r'neck.\1.bn.\2'),
]


def official_dfine_to_ours(state: StateDict) -> StateDict:
    """Convert a Peterande/D-FINE or Intellindust-AI-Lab/DEIM state dict.

    Args:
        state (dict[str, Tensor]): Official keys, optionally with the
            ``module.`` prefix of a DDP-wrapped model.

    Returns:
        dict[str, Tensor]: Our ``DFINE``'s keys, with a
        ``num_batches_tracked`` for every norm (D-FINE-L/X freeze the
        backbone's, which then save none).

    Raises:
        UnknownLayoutError: A key has no counterpart (naming it).
        ValueError: ``up`` or ``reg_scale``'s two copies differ, or a
            ``num_points_scale`` is not a table of ``1 / n``.
    """
    state = {k.removeprefix('module.'): v for k, v in state.items()}
    num_layers = _decoder_layers(state, r'decoder\.decoder\.layers\.(\d+)\.')
    for name in ('up', 'reg_scale'):
        outer, inner = f'decoder.{name}', f'decoder.decoder.{name}'
        if outer in state and inner in state:
            if not torch.equal(state[outer], state[inner]):
                raise ValueError(
                    f'{outer} = {state[outer].tolist()} but {inner} = '
                    f'{state[inner].tolist()}: the official model holds one '
                    f'parameter twice; the file is inconsistent.')
            state.pop(inner)
    rules = [
        (r'backbone\.((?:stem|stages)\.[\w.]+)', r'backbone.\1'),
        *_OFFICIAL_ENCODER_RULES,
        (r'decoder\.input_proj\.(\d+)\.conv\.weight',
         r'decoder_input_proj.\1.conv.weight'),
        (r'decoder\.input_proj\.(\d+)\.norm\.(\w+)',
         r'decoder_input_proj.\1.bn.\2'),
        (r'decoder\.decoder\.layers\.\d+\.cross_attn\.num_points_scale',
         DERIVED),
        (r'decoder\.decoder\.((?:layers|lqe_layers)\.[\w.]+|up|reg_scale)',
         r'decoder.\1'),
        (r'decoder\.(up|reg_scale)', r'decoder.\1'),
        (r'decoder\.((?:query_pos_head|pre_bbox_head)\.layers\.\d\.'
         r'(?:weight|bias))', r'decoder.\1'),
        *_head_rules(num_layers, r'decoder\.', dict(linear='proj',
                                                    norm='norm')),
        (r'decoder\.dec_score_head\.(\d+)\.(weight|bias)',
         r'bbox_head.cls_branches.\1.\2'),
        (r'decoder\.dec_bbox_head\.(\d+)\.layers\.(\d)\.(weight|bias)',
         lambda m: reg_branch_key(m[1], m[2], m[3])),
        # Anchors of a fixed eval size: computed per input here.
        (r'decoder\.(anchors|valid_mask)', DERIVED),
    ]
    renamed = apply_rules(state, rules, 'official D-FINE')
    drop_points_scales(renamed)
    return finish(renamed,
                  _num_classes(state, 'decoder.enc_score_head.weight'))
