# Copyright (c) OpenMMLab. All rights reserved.
"""HF transformers' D-FINE encoder weights in our ``DFineHybridEncoder``'s
keys.

``DFineForObjectDetection`` keeps the input projections as
``model.encoder_input_proj.*`` and the encoder as ``model.encoder.*``;
without the ``model.`` prefix they differ from ours in names only:

- ``encoder_input_proj.i.{0,1}`` is ``input_proj.i.{conv,bn}``;
- ``encoder.aifi.i.layers.j`` is ``encoder.i.j``, whose q, k and v
  projections merge into ``nn.MultiheadAttention``'s ``in_proj``
  (stacked as q, k, v), ``o_proj`` is its ``out_proj``, and
  ``self_attn_layer_norm``, ``mlp.layers.{0,1}`` and ``final_layer_norm``
  are ``norm1``, ``linear{1,2}`` and ``norm2``. ``save_pretrained``
  writes the hub's older names (as ``ustc-community/dfine-*`` has them):
  ``encoder.encoder.i.layers.j``, ``self_attn.out_proj`` and
  ``fc{1,2}``, which are understood too;
- in the fusion blocks (``RepNCSPELAN4``), ``conv1``, ``csp_rep1``,
  ``conv2``, ``csp_rep2``, ``conv3`` and ``conv4`` are D-FINE's ``cv1``,
  ``cv2.0``, ``cv2.1``, ``cv3.0``, ``cv3.1`` and ``cv4``;
- ``downsample_convs.i.conv{1,2}`` (``SCDown``) are D-FINE's
  ``downsample_convs.i.0.cv{1,2}``;
- every conv's ``norm`` is mmcv's ``bn``.
"""
from ..rtdetr.renaming import QKV, apply_rules, finish
from ..rtdetr.sources import StateDict

_AIFI = r'encoder\.(?:aifi|encoder)\.(\d+)\.layers\.(\d+)\.'
_AIFI_PARTS = {
    'self_attn.o_proj': 'self_attn.out_proj',
    'self_attn.out_proj': 'self_attn.out_proj',
    'self_attn_layer_norm': 'norm1',
    'mlp.layers.0': 'linear1',
    'mlp.layers.1': 'linear2',
    'fc1': 'linear1',
    'fc2': 'linear2',
    'final_layer_norm': 'norm2',
}
_ELAN_PARTS = {
    'conv1': 'cv1',
    'csp_rep1': 'cv2.0',
    'conv2': 'cv2.1',
    'csp_rep2': 'cv3.0',
    'conv3': 'cv3.1',
    'conv4': 'cv4',
}
# A Conv-Norm unit's parameters and statistics, HF's names.
_UNIT = r'\.(?:conv\.weight|norm\.(\w+))'


def _unit(prefix: str, match_norm: str) -> str:
    """Our key of a Conv-Norm unit's tensor below ``prefix``."""
    return f'{prefix}.bn.{match_norm}' if match_norm else \
        f'{prefix}.conv.weight'


_RULES = [
    (r'encoder_input_proj\.(\d+)\.0\.weight', r'input_proj.\1.conv.weight'),
    (r'encoder_input_proj\.(\d+)\.1\.(\w+)', r'input_proj.\1.bn.\2'),
    (_AIFI + r'self_attn\.([qkv])_proj\.(weight|bias)',
     lambda m: f'{QKV}{m[3]}:encoder.{m[1]}.{m[2]}.self_attn.in_proj_{m[4]}'),
    (_AIFI + r'(' + '|'.join(p.replace('.', r'\.') for p in _AIFI_PARTS) +
     r')\.(weight|bias)',
     lambda m: f'encoder.{m[1]}.{m[2]}.{_AIFI_PARTS[m[3]]}.{m[4]}'),
    (r'encoder\.lateral_convs\.(\d+)' + _UNIT,
     lambda m: _unit(f'lateral_convs.{m[1]}', m[2])),
    (r'encoder\.(fpn_blocks|pan_blocks)\.(\d+)\.(conv[1-4]|csp_rep[12])'
     r'((?:\.(?:conv[1-3]|bottlenecks\.\d+\.conv[12]))?)' + _UNIT,
     lambda m: _unit(f'{m[1]}.{m[2]}.{_ELAN_PARTS[m[3]]}{m[4]}', m[5])),
    (r'encoder\.downsample_convs\.(\d+)\.conv([12])' + _UNIT,
     lambda m: _unit(f'downsample_convs.{m[1]}.0.cv{m[2]}', m[3])),
]


def hf_dfine_encoder_to_ours(state: StateDict) -> StateDict:
    """Rename HF's D-FINE input projections and ``DFineHybridEncoder``
    (see the module doc).

    Args:
        state (dict[str, Tensor]): HF keys without the ``model.`` prefix:
            ``encoder_input_proj.*`` and ``encoder.*``.

    Returns:
        dict[str, Tensor]: Our ``DFineHybridEncoder``'s keys.

    Raises:
        UnknownLayoutError: Keys have no counterpart (naming them), or a
            q, k or v projection is missing.
    """
    return finish(apply_rules(state, _RULES, 'HF D-FINE encoder'), None)
