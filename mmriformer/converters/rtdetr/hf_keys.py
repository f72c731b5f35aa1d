# Copyright (c) OpenMMLab. All rights reserved.
"""HF transformers' ``RTDetrForObjectDetection`` keys to ours.

Both generations of names are understood: transformers 4.x
(``self_attn.out_proj``, ``fc1``, ``encoder.encoder``) and 5.x
(``self_attn.o_proj``, ``mlp.fc1``, ``encoder.aifi``).
"""
import re
from typing import Dict, List, Optional

from .renaming import (ENCODER_CONV_RULES, QKV, STEM_CONV, Rule, apply_rules,
                       count_indices, finish, reg_branch_key, shortcut_key)
from .sources import StateDict

HF_PART = {'convolution': 'conv', 'normalization': 'norm'}


def hf_rules(num_layers: int, basic: bool) -> List[Rule]:
    """Regex rules from HF (``model.`` prefix removed) to our keys.

    Args:
        num_layers (int): Decoder layers (the index of the encoder heads).
        basic (bool): Whether the backbone has basic blocks.
    """
    bb = r'backbone\.model\.'
    stage = bb + r'encoder\.stages\.(\d+)\.layers\.(\d+)\.'
    dec_layer = {
        'self_attn_layer_norm': 'norm1',
        'encoder_attn_layer_norm': 'norm2',
        'final_layer_norm': 'norm3',
    }
    enc_layer = {
        'self_attn_layer_norm': 'norm1',
        'final_layer_norm': 'norm2',
    }

    def layer_rest(rest: str, norms: Dict[str, str]) -> str:
        head, _, tail = rest.partition('.')
        if head in norms:
            return f'{norms[head]}.{tail}'
        rest = re.sub(r'^(?:mlp\.)?fc([12])\.', r'linear\1.', rest)
        rest = re.sub(r'^self_attn\.(?:o_proj|out_proj)\.',
                      'self_attn.out_proj.', rest)
        rest = re.sub(r'^encoder_attn\.', 'cross_attn.', rest)
        found = re.fullmatch(r'self_attn\.([qkv])_proj\.(weight|bias)', rest)
        if found:
            return (f'{QKV}{found[1]}:self_attn.in_proj_{found[2]}')
        return rest

    def qkv_prefix(prefix: str, rest: str) -> str:
        if rest.startswith(QKV):
            return f'{rest[:len(QKV) + 2]}{prefix}{rest[len(QKV) + 2:]}'
        return prefix + rest

    return [
        (bb + r'embedder\.embedder\.(\d)\.convolution\.weight',
         lambda m: f'backbone.stem.{STEM_CONV[int(m[1])]}.weight'),
        (bb + r'embedder\.embedder\.(\d)\.normalization\.(\w+)',
         lambda m: f'backbone.stem.{STEM_CONV[int(m[1])] + 1}.{m[2]}'),
        (stage + r'layer\.(\d)\.convolution\.weight', lambda m:
         f'backbone.layer{int(m[1]) + 1}.{m[2]}.conv{int(m[3]) + 1}.weight'),
        (stage + r'layer\.(\d)\.normalization\.(\w+)', lambda m:
         f'backbone.layer{int(m[1]) + 1}.{m[2]}.bn{int(m[3]) + 1}.{m[4]}'),
        # Projection shortcuts: 'shortcut.1.' after the 'vd' average pool
        # (stride 2), plain 'shortcut.' at stride 1, which only stage 1
        # has; elsewhere it would be a strided 1x1 conv, which no
        # PResNet has, so such keys stay unknown.
        (stage + r'shortcut\.1\.(convolution|normalization)\.(\w+)',
         lambda m: shortcut_key(m[1], m[2], HF_PART[m[3]], m[4], True, basic)
         ),
        (bb + r'encoder\.stages\.(0)\.layers\.(\d+)\.shortcut\.'
         r'(convolution|normalization)\.(\w+)', lambda m: shortcut_key(
             m[1], m[2], HF_PART[m[3]], m[4], False, basic)),
        (r'encoder_input_proj\.(\d+)\.0\.weight',
         r'neck.input_proj.\1.conv.weight'),
        (r'encoder_input_proj\.(\d+)\.1\.(\w+)', r'neck.input_proj.\1.bn.\2'),
        (r'encoder\.(?:aifi|encoder)\.(\d+)\.layers\.(\d+)\.(.+)',
         lambda m: qkv_prefix(f'neck.encoder.{m[1]}.{m[2]}.',
                              layer_rest(m[3], enc_layer))),
        *ENCODER_CONV_RULES,
        (r'denoising_class_embed\.weight',
         'dn_query_generator.label_embedding.weight'),
        (r'enc_output\.([01])\.(\w+)', r'memory_proj.\1.\2'),
        (r'enc_score_head\.(\w+)', f'bbox_head.cls_branches.{num_layers}.\\1'),
        (r'enc_bbox_head\.layers\.(\d)\.(\w+)',
         lambda m: reg_branch_key(num_layers, m[1], m[2])),
        (r'decoder_input_proj\.(\d+)\.0\.weight',
         r'decoder_input_proj.\1.conv.weight'),
        (r'decoder_input_proj\.(\d+)\.1\.(\w+)',
         r'decoder_input_proj.\1.bn.\2'),
        (r'decoder\.layers\.(\d+)\.(.+)', lambda m: qkv_prefix(
            f'decoder.layers.{m[1]}.', layer_rest(m[2], dec_layer))),
        (r'decoder\.query_pos_head\.layers\.(\d)\.(\w+)',
         r'decoder.query_pos_head.layers.\1.\2'),
        (r'decoder\.class_embed\.(\d+)\.(\w+)',
         r'bbox_head.cls_branches.\1.\2'),
        (r'decoder\.bbox_embed\.(\d+)\.layers\.(\d)\.(\w+)',
         lambda m: reg_branch_key(m[1], m[2], m[3])),
    ]


def hf_to_ours(state: StateDict,
               num_classes: Optional[int] = None) -> StateDict:
    """Convert an HF transformers ``RTDetrForObjectDetection`` state dict.

    Args:
        state (dict[str, Tensor]): HF keys (``model.*``), transformers 4.x
            or 5.x names.
        num_classes (int, optional): Classes, to trim the denoising table;
            defaults to the rows of ``enc_score_head``.

    Returns:
        dict[str, Tensor]: Our keys.

    Raises:
        UnknownLayoutError: A key has no counterpart.
    """
    state = {k.removeprefix('model.'): v for k, v in state.items()}
    num_layers = count_indices(state, r'decoder\.layers\.(\d+)\.')
    if num_classes is None and 'enc_score_head.weight' in state:
        num_classes = state['enc_score_head.weight'].shape[0]
    # Bottleneck blocks have a third conv ('layer.2').
    basic = not any(
        re.match(
            r'backbone\.model\.encoder\.stages\.\d+\.layers\.\d+\.'
            r'layer\.2\.', k) for k in state)
    renamed = apply_rules(state, hf_rules(num_layers, basic), 'HF')
    return finish(renamed, num_classes)
