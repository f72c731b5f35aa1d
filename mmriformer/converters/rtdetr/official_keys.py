# Copyright (c) OpenMMLab. All rights reserved.
"""lyuwenyu/RT-DETR's keys (``rtdetr_pytorch`` v1, ``rtdetrv2_pytorch`` v2)
to ours."""
import re
from typing import List, Optional

from .renaming import (DERIVED, ENCODER_CONV_RULES, STEM_CONV, Renamed, Rule,
                       apply_rules, count_indices, finish, reg_branch_key,
                       shortcut_key)
from .sources import StateDict


def official_backbone_rules(basic: bool) -> List[Rule]:
    """Regex rules from lyuwenyu/RT-DETR's ``PResNet`` (keys prefixed with
    ``backbone.``) to ours.

    Args:
        basic (bool): Whether the backbone has basic blocks.
    """
    block = r'backbone\.res_layers\.(\d+)\.blocks\.(\d+)\.'
    branch = {'a': 1, 'b': 2, 'c': 3}
    return [
        (r'backbone\.conv1\.conv1_(\d)\.conv\.weight',
         lambda m: f'backbone.stem.{STEM_CONV[int(m[1]) - 1]}.weight'),
        (r'backbone\.conv1\.conv1_(\d)\.norm\.(\w+)',
         lambda m: f'backbone.stem.{STEM_CONV[int(m[1]) - 1] + 1}.{m[2]}'),
        (block + r'branch2([abc])\.conv\.weight', lambda m:
         f'backbone.layer{int(m[1]) + 1}.{m[2]}.conv{branch[m[3]]}.weight'),
        (block + r'branch2([abc])\.norm\.(\w+)', lambda m:
         f'backbone.layer{int(m[1]) + 1}.{m[2]}.bn{branch[m[3]]}.{m[4]}'),
        # 'short.conv.*' after the 'vd' pool (stride 2); a plain
        # 'short.*' ConvNormLayer at stride 1, in stage 1 only (elsewhere
        # it would be variant 'b', a strided 1x1 conv that no PResNet has).
        (block + r'short\.conv\.(conv|norm)\.(\w+)',
         lambda m: shortcut_key(m[1], m[2], m[3], m[4], True, basic)),
        (r'backbone\.res_layers\.(0)\.blocks\.(\d+)\.short\.(conv|norm)\.'
         r'(\w+)',
         lambda m: shortcut_key(m[1], m[2], m[3], m[4], False, basic)),
    ]


def official_rules(num_layers: int, basic: bool) -> List[Rule]:
    """Regex rules from lyuwenyu/RT-DETR (v1 and v2) to our keys.

    Args:
        num_layers (int): Decoder layers (the index of the encoder heads).
        basic (bool): Whether the backbone has basic blocks.
    """
    return [
        *official_backbone_rules(basic),
        # v1 (nn.Sequential) and v2 (OrderedDict conv/norm) projections.
        (r'encoder\.input_proj\.(\d+)\.(?:0|conv)\.weight',
         r'neck.input_proj.\1.conv.weight'),
        (r'encoder\.input_proj\.(\d+)\.(?:1|norm)\.(\w+)',
         r'neck.input_proj.\1.bn.\2'),
        (r'encoder\.encoder\.(\d+)\.layers\.(\d+)\.(.+)',
         r'neck.encoder.\1.\2.\3'),
        *ENCODER_CONV_RULES,
        # RepVGG blocks already fused (convert_to_deploy): our deploy form.
        (r'encoder\.(fpn_blocks|pan_blocks)\.(\d+)\.bottlenecks\.(\d+)\.conv'
         r'\.(weight|bias)', r'neck.\1.\2.bottlenecks.\3.conv.\4'),
        (r'decoder\.input_proj\.(\d+)\.conv\.weight',
         r'decoder_input_proj.\1.conv.weight'),
        (r'decoder\.input_proj\.(\d+)\.norm\.(\w+)',
         r'decoder_input_proj.\1.bn.\2'),
        # v2's per-point offset scales: checked to be uniform, then dropped.
        (r'decoder\.decoder\.layers\.(\d+)\.cross_attn\.num_points_scale',
         DERIVED),
        (r'decoder\.decoder\.layers\.(\d+)\.(.+)', r'decoder.layers.\1.\2'),
        (r'decoder\.denoising_class_embed\.weight',
         'dn_query_generator.label_embedding.weight'),
        (r'decoder\.query_pos_head\.layers\.(\d)\.(\w+)',
         r'decoder.query_pos_head.layers.\1.\2'),
        (r'decoder\.enc_output\.(?:0|proj)\.(\w+)', r'memory_proj.0.\1'),
        (r'decoder\.enc_output\.(?:1|norm)\.(\w+)', r'memory_proj.1.\1'),
        (r'decoder\.enc_score_head\.(\w+)',
         f'bbox_head.cls_branches.{num_layers}.\\1'),
        (r'decoder\.enc_bbox_head\.layers\.(\d)\.(\w+)',
         lambda m: reg_branch_key(num_layers, m[1], m[2])),
        (r'decoder\.dec_score_head\.(\d+)\.(\w+)',
         r'bbox_head.cls_branches.\1.\2'),
        (r'decoder\.dec_bbox_head\.(\d+)\.layers\.(\d)\.(\w+)',
         lambda m: reg_branch_key(m[1], m[2], m[3])),
        # Anchors of a fixed eval size (v2 buffers): computed per input here.
        (r'decoder\.(anchors|valid_mask)', DERIVED),
    ]


def rename_official(state: StateDict) -> Renamed:
    """Rename lyuwenyu/RT-DETR (v1 or v2) keys by :func:`official_rules`.

    Args:
        state (dict[str, Tensor]): Official keys, optionally with the
            ``module.`` prefix of a DDP-wrapped model.

    Returns:
        dict: Our key -> (official key, tensor), with the placeholders of
        :func:`~.renaming.apply_rules`.

    Raises:
        UnknownLayoutError: A key has no counterpart.
    """
    state = {k.removeprefix('module.'): v for k, v in state.items()}
    num_layers = count_indices(state, r'decoder\.decoder\.layers\.(\d+)\.')
    # Bottleneck blocks have a third conv ('branch2c').
    basic = not any(
        re.match(r'backbone\.res_layers\.\d+\.blocks\.\d+\.branch2c\.', k)
        for k in state)
    return apply_rules(state, official_rules(num_layers, basic), 'official')


def official_to_ours(state: StateDict,
                     num_classes: Optional[int] = None) -> StateDict:
    """Convert a lyuwenyu/RT-DETR (v1 or v2) state dict.

    Args:
        state (dict[str, Tensor]): Official keys, optionally with the
            ``module.`` prefix of a DDP-wrapped model.
        num_classes (int, optional): As in :func:`hf_to_ours`.

    Returns:
        dict[str, Tensor]: Our keys; a key without counterpart raises
        ``UnknownLayoutError``.
    """
    renamed = rename_official(state)
    if num_classes is None:
        num_classes = next((value.shape[0]
                            for old, value in renamed.values()
                            if old.endswith('enc_score_head.weight')), None)
    return finish(renamed, num_classes)
