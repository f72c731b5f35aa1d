# Copyright (c) OpenMMLab. All rights reserved.
"""Renaming a state dict by regex rules, shared by the HF and official maps.

A rule is ``(pattern, target)``: the first pattern that matches a key in
full renames it, with ``re.Match.expand`` for a string target or by calling
a callable one. Two placeholders stand for keys that need more than a
rename, resolved by :func:`finish`:

- ``QKV + 'q:' + target``: HF's separate q, k and v projections, merged
  into ``nn.MultiheadAttention``'s ``in_proj`` (stacked as q, k, v);
- ``DERIVED``: buffers recomputed here from the input size (v2's anchors),
  or checked and dropped (v2's uniform sampling-point scales).
"""
import re
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .sources import StateDict, UnknownLayoutError

Rule = Tuple[str, Union[str, Callable[[re.Match], Optional[str]]]]
Renamed = Dict[str, Tuple[str, Tensor]]

QKV = '#qkv:'
DERIVED = '#derived'
# The stem's Sequential holds conv, bn, relu per conv layer.
STEM_CONV = {0: 0, 1: 3, 2: 6}
# The hybrid encoder's ConvNormLayers, named alike by HF and the official
# code ('conv'/'norm'); ours are ConvModules ('conv'/'bn').
ENCODER_CONV_RULES = [
    (r'encoder\.(lateral_convs|downsample_convs)\.(\d+)\.conv\.weight',
     r'neck.\1.\2.conv.weight'),
    (r'encoder\.(lateral_convs|downsample_convs)\.(\d+)\.norm\.(\w+)',
     r'neck.\1.\2.bn.\3'),
    (r'encoder\.(fpn_blocks|pan_blocks)\.(\d+)\.((?:bottlenecks\.\d+\.)?'
     r'conv\d)\.conv\.weight', r'neck.\1.\2.\3.conv.weight'),
    (r'encoder\.(fpn_blocks|pan_blocks)\.(\d+)\.((?:bottlenecks\.\d+\.)?'
     r'conv\d)\.norm\.(\w+)', r'neck.\1.\2.\3.bn.\4'),
]


def apply_rules(state: StateDict, rules: Sequence[Rule],
                source: str) -> Renamed:
    """Rename every key by the first rule that matches it fully.

    Args:
        state (dict[str, Tensor]): The source state dict.
        rules (Sequence[Rule]): ``(pattern, target)`` pairs, in order.
        source (str): The layout's name, for the message.

    Returns:
        dict: New key -> (old key, tensor). New keys starting with ``#``
        are placeholders for :func:`finish`.

    Raises:
        UnknownLayoutError: Keys match no rule (naming them).
    """
    compiled = [(re.compile(pattern), target) for pattern, target in rules]
    out, unknown = {}, []
    for key, value in state.items():
        for pattern, target in compiled:
            match = pattern.fullmatch(key)
            if match is None:
                continue
            new = target(match) if callable(target) else match.expand(target)
            if new is not None:
                if new == DERIVED:
                    new = f'{DERIVED}:{key}'
                out[new] = (key, value)
                break
        else:
            unknown.append(key)
    if unknown:
        raise UnknownLayoutError(
            f'{len(unknown)} {source} keys have no counterpart in our '
            f'RT-DETR (unknown layout or an unsupported variant, e.g. '
            f'learnt initial queries or another backbone): '
            f'{", ".join(unknown[:8])}'
            f'{" ..." if len(unknown) > 8 else ""}')
    return out


def shortcut_key(stage: str, block: str, part: str, rest: str, pooled: bool,
                 basic: bool) -> str:
    """Our key of a projection shortcut's conv or norm.

    Args:
        stage (str): The source's stage index (0-based).
        block (str): The block index in the stage.
        part (str): ``'conv'`` or ``'norm'``.
        rest (str): The parameter or buffer name, e.g. ``'weight'``.
        pooled (bool): Whether the source shortcut starts with an average
            pool (the 'vd' downsampling shortcut).
        basic (bool): Whether the backbone has basic blocks (R18, R34).

    Returns:
        str: ``backbone.layer{stage + 1}.{block}.downsample.{i}.{rest}``.
    """
    # ResNetV1d's ResLayer puts an AvgPool2d first in every downsample,
    # even at stride 1 (kernel 1), so conv and norm are 1 and 2. Only
    # PResNet's own stage-1 projection of basic blocks has no pool: 0 and 1.
    first = 0 if basic and not pooled else 1
    index = first if part == 'conv' else first + 1
    return f'backbone.layer{int(stage) + 1}.{block}.downsample.{index}.{rest}'


def reg_branch_key(branch: Union[int, str], layer: str, rest: str) -> str:
    """Our key of a layer of a box head's MLP.

    Args:
        branch (int | str): The decoder layer's index (the encoder's head
            comes after the decoder layers).
        layer (str): The MLP layer's index in the source.
        rest (str): The parameter name, e.g. ``'weight'``.

    Returns:
        str: ``bbox_head.reg_branches.{branch}.{2 * layer}.{rest}``.
    """
    # Our branches are Sequentials with an activation (ReLU, or DEIM's
    # SiLU) after each Linear but the last, so MLP layer i is module 2 * i.
    return f'bbox_head.reg_branches.{branch}.{2 * int(layer)}.{rest}'


def count_indices(keys: Iterable[str], pattern: str) -> int:
    """1 + the largest index captured by ``pattern`` (0 if none)."""
    found = [int(m[1]) for m in map(re.compile(pattern).match, keys) if m]
    return max(found) + 1 if found else 0


def check_uniform_points(key: str, value: Tensor) -> None:
    """v2's ``num_points_scale`` must be ``1 / num_points`` everywhere: the
    converter maps equal points per level only.

    Raises:
        ValueError: The levels have different numbers of points.
    """
    # The scales are all equal iff every level has the same points.
    scale = value.flatten().float()
    if not torch.allclose(scale, scale[0].expand_as(scale)):
        raise ValueError(
            f'{key} = {scale.tolist()}: a different number of sampling '
            f'points per level; the converter maps equal numbers only.')


def trim_denoising_table(state: StateDict, num_classes: int) -> None:
    """Drop the padding row of RT-DETR's denoising label table, in place.

    RT-DETR's table has ``num_classes + 1`` rows (``padding_idx`` is the
    empty denoising slot); mmdet's generator has ``num_classes``.

    Raises:
        ValueError: The table has another number of rows.
    """
    key = 'dn_query_generator.label_embedding.weight'
    if key not in state:
        return
    rows = state[key].shape[0]
    if rows == num_classes + 1:
        state[key] = state[key][:num_classes]
    elif rows != num_classes:
        raise ValueError(
            f'{key}: the denoising label table has {rows} rows for '
            f'{num_classes} classes; expected {num_classes} + 1.')


def finish(renamed: Renamed, num_classes: Optional[int]) -> StateDict:
    """Resolve the placeholders of :func:`apply_rules`.

    Merges q/k/v, checks and drops derived buffers, trims the denoising
    table and adds the ``num_batches_tracked`` counters that frozen
    BatchNorms do not save.

    Args:
        renamed (dict): From :func:`apply_rules`.
        num_classes (int, optional): Classes, for the denoising table.

    Returns:
        dict[str, Tensor]: Our state dict.

    Raises:
        UnknownLayoutError: q, k or v is missing for an attention.
        ValueError: From :func:`check_uniform_points` or
            :func:`trim_denoising_table`.
    """
    state, qkv = {}, {}
    for new, (old, value) in renamed.items():
        if new.startswith(QKV):
            which, target = new[len(QKV)], new[len(QKV) + 2:]
            qkv.setdefault(target, {})[which] = (old, value)
        elif new.startswith(DERIVED):
            if old.endswith('num_points_scale'):
                check_uniform_points(old, value)
        else:
            state[new] = value
    for target, parts in qkv.items():
        if sorted(parts) != ['k', 'q', 'v']:
            raise UnknownLayoutError(
                f'{target}: found only the {sorted(parts)} projections of '
                f'q, k and v ({[old for old, _ in parts.values()]}).')
        state[target] = torch.cat([parts[c][1] for c in 'qkv'])
    if num_classes is not None:
        trim_denoising_table(state, num_classes)
    add_norm_counters(state)
    return state


def add_norm_counters(state: StateDict) -> StateDict:
    """Give every BatchNorm without ``num_batches_tracked`` a 0 one, in
    place.

    Frozen BatchNorms (official R50/R101, D-FINE-L/X, HF backbones) save
    no counter; ours has one. It only matters in training with
    ``momentum=None``, where 0 restarts the running average.

    Args:
        state (dict[str, Tensor]): Our keys.

    Returns:
        dict[str, Tensor]: ``state``.
    """
    for name in list(state):
        if name.endswith('.running_mean'):
            counter = name[:-len('running_mean')] + 'num_batches_tracked'
            state.setdefault(counter, torch.tensor(0, dtype=torch.long))
    return state
