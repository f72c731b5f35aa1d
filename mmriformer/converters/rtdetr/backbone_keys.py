# Copyright (c) OpenMMLab. All rights reserved.
"""ImageNet ResNet-vd backbone weights in our ``PResNet``'s keys.

Three layouts of the same network are understood:

- ``'official'``: lyuwenyu/RT-DETR's ``PResNet``, as its ImageNet files
  (``ResNet{18,34}_vd_pretrained_from_paddle.pth``,
  ``ResNet50_vd_ssld_v2_...``, ``ResNet101_vd_ssld_...``) hold it:
  ``conv1.conv1_{1,2,3}.{conv,norm}.*`` and
  ``res_layers.{i}.blocks.{j}.{branch2a,branch2b,branch2c,short}.*``, norms
  without ``num_batches_tracked``;
- ``'mmpretrain'``: mmpretrain's ``ResNetV1d`` (``stem.{0,1,2}.{conv,bn}``
  ConvModules, and no pool in the stride-1 shortcut of stage 1, so its
  conv and BN are ``layer1.0.downsample.0`` and ``.1``);
- ``'ours'``: mmdet's ``ResNetV1d`` and our ``PResNet`` (``stem.{0..8}``
  as conv, bn, relu three times; ``downsample.{1,2}`` after an average
  pool, also at stride 1).
"""
import re

from .official_keys import official_backbone_rules
from .renaming import STEM_CONV, apply_rules, finish
from .sources import StateDict, UnknownLayoutError

OFFICIAL, MMPRETRAIN, OURS = 'official', 'mmpretrain', 'ours'


def backbone_layout(state: StateDict) -> str:
    """Which ResNet-vd layout ``state`` (backbone keys, no prefix) has.

    Returns:
        str: ``'official'``, ``'mmpretrain'`` or ``'ours'``.

    Raises:
        UnknownLayoutError: It has none of them.
    """
    if any(k.startswith(('conv1.conv1_', 'res_layers.')) for k in state):
        return OFFICIAL
    if 'stem.0.conv.weight' in state:
        return MMPRETRAIN
    if 'stem.0.weight' in state:
        return OURS
    raise UnknownLayoutError(
        f'Unknown ResNet-vd layout: the keys (e.g. {list(state)[:3]}) are '
        f"neither lyuwenyu/RT-DETR's PResNet ('conv1.conv1_1.*', "
        f"'res_layers.*'), mmpretrain's ResNetV1d ('stem.0.conv.*') nor "
        f"mmdet's ResNetV1d ('stem.0.weight'); with a classifier or "
        f"detector checkpoint, set init_cfg.prefix='backbone.'.")


def official_backbone_to_ours(state: StateDict) -> StateDict:
    """Rename an official ``PResNet`` state dict (see the module doc).

    Frozen BatchNorms save no counter: ``num_batches_tracked`` is added
    as 0.

    Raises:
        UnknownLayoutError: A key has no counterpart.
    """
    basic = not any(
        re.match(r'res_layers\.\d+\.blocks\.\d+\.branch2c\.', k)
        for k in state)
    renamed = apply_rules({f'backbone.{k}': v
                           for k, v in state.items()},
                          official_backbone_rules(basic), 'official PResNet')
    return {
        k[len('backbone.'):]: v
        for k, v in finish(renamed, None).items()
    }


def mmpretrain_resnetv1d_to_ours(state: StateDict) -> StateDict:
    """Rename an mmpretrain ``ResNetV1d`` state dict (see the module doc)."""
    out = {}
    for key, value in state.items():
        stem = re.fullmatch(r'stem\.(\d)\.(conv|bn)\.(\w+)', key)
        shortcut = re.fullmatch(r'layer1\.(\d+)\.downsample\.(\d)\.(\w+)', key)
        if stem:
            index = STEM_CONV[int(stem[1])] + (stem[2] == 'bn')
            key = f'stem.{index}.{stem[3]}'
        elif shortcut:
            # One place on: ours starts with a (kernel 1) average pool.
            key = (f'layer1.{shortcut[1]}.downsample.'
                   f'{int(shortcut[2]) + 1}.{shortcut[3]}')
        out[key] = value
    return out


def resnet_vd_to_ours(state: StateDict) -> StateDict:
    """Any layout of :func:`backbone_layout` in our ``PResNet``'s keys.

    Raises:
        UnknownLayoutError: An unknown layout or key.
    """
    layout = backbone_layout(state)
    if layout == OFFICIAL:
        return official_backbone_to_ours(state)
    if layout == MMPRETRAIN:
        return mmpretrain_resnetv1d_to_ours(state)
    return dict(state)
