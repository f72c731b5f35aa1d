# Copyright (c) OpenMMLab. All rights reserved.
"""HF transformers' D-FINE decoder weights in our ``DFineDecoder``'s keys.

HF's ``DFineDecoder`` (``model.decoder.*`` of ``DFineForObjectDetection``)
differs from ours in names only:

- ``layers.i.self_attn.{q,k,v}_proj`` are merged into
  ``nn.MultiheadAttention``'s ``in_proj`` (stacked as q, k, v) and
  ``o_proj`` is its ``out_proj``;
- ``self_attn_layer_norm``, ``encoder_attn``, ``mlp.layers.{0,1}`` and
  ``final_layer_norm`` are ``norm1``, ``cross_attn``, ``linear{1,2}`` and
  ``norm3`` (D-FINE's own names); ``gateway``, ``query_pos_head``,
  ``pre_bbox_head``, ``lqe_layers``, ``up`` and ``reg_scale`` are the same;
- ``save_pretrained`` writes the hub's older names (as
  ``ustc-community/dfine-*`` has them), ``self_attn.out_proj`` and
  ``fc{1,2}``, which are understood too;
- ``encoder_attn.num_points_scale`` (``1 / n`` for each of a level's ``n``
  points) follows from the points per level, which our attention holds as
  ``num_points``: it is checked to be such a table and dropped.

``class_embed`` and ``bbox_embed``, which HF also attaches to its decoder,
belong to the detection head and are not mapped here.
"""
from ..rtdetr.renaming import DERIVED, QKV, Renamed, apply_rules, finish
from ..rtdetr.sources import StateDict

# Where DFineForObjectDetection keeps its decoder.
HF_DFINE_DECODER_PREFIX = 'model.decoder.'
_LAYER = r'layers\.(\d+)\.'
_RULES = [
    (_LAYER + r'self_attn\.([qkv])_proj\.(weight|bias)',
     lambda m: f'{QKV}{m[2]}:layers.{m[1]}.self_attn.in_proj_{m[3]}'),
    (_LAYER + r'self_attn\.(?:o_proj|out_proj)\.(weight|bias)',
     r'layers.\1.self_attn.out_proj.\2'),
    (_LAYER + r'self_attn_layer_norm\.(weight|bias)', r'layers.\1.norm1.\2'),
    (_LAYER + r'encoder_attn\.((?:sampling_offsets|attention_weights)\.'
     r'(?:weight|bias))', r'layers.\1.cross_attn.\2'),
    (_LAYER + r'encoder_attn\.num_points_scale', DERIVED),
    (_LAYER + r'gateway\.(?:gate|norm)\.(?:weight|bias)', r'\g<0>'),
    (_LAYER + r'mlp\.layers\.([01])\.(weight|bias)',
     lambda m: f'layers.{m[1]}.linear{int(m[2]) + 1}.{m[3]}'),
    (_LAYER + r'fc([12])\.(weight|bias)', r'layers.\1.linear\2.\3'),
    (_LAYER + r'final_layer_norm\.(weight|bias)', r'layers.\1.norm3.\2'),
    (r'(?:query_pos_head|pre_bbox_head|lqe_layers\.\d+\.reg_conf)\.layers\.'
     r'\d+\.(?:weight|bias)', r'\g<0>'),
    (r'up|reg_scale', r'\g<0>'),
]


def check_points_scale(key: str, scale: list) -> None:
    """Check that ``scale`` is ``1 / n`` repeated ``n`` times for each
    level's number of points ``n`` (HF's ``num_points_scale``).

    Raises:
        ValueError: It is not.
    """
    start = 0
    while start < len(scale):
        points = round(1 / scale[start]) if scale[start] > 0 else 0
        level = scale[start:start + points]
        if points < 1 or len(level) != points or any(
                abs(value * points - 1) > 1e-6 for value in level):
            raise ValueError(
                f'{key} = {scale}: not 1 / n for each of n points per '
                f'level, so the points per level cannot be read from it.')
        start += points


def hf_dfine_decoder_to_ours(state: StateDict) -> StateDict:
    """Rename an HF ``DFineDecoder`` state dict (see the module doc).

    Args:
        state (dict[str, Tensor]): HF decoder keys without prefix (strip
            :data:`HF_DFINE_DECODER_PREFIX`) and without ``class_embed`` /
            ``bbox_embed``.

    Returns:
        dict[str, Tensor]: Our ``DFineDecoder``'s keys.

    Raises:
        UnknownLayoutError: Keys have no counterpart (naming them), or a
            q, k or v projection is missing.
        ValueError: A ``num_points_scale`` is not a table of ``1 / n``.
    """
    renamed = apply_rules(state, _RULES, 'HF D-FINE decoder')
    drop_points_scales(renamed)
    return finish(renamed, None)


def drop_points_scales(renamed: Renamed) -> None:
    """Check and drop the ``num_points_scale`` placeholders of
    :func:`~..rtdetr.renaming.apply_rules`, in place.

    Unlike RT-DETRv2's, D-FINE's levels may have different numbers of
    points (S: 3, 6, 3), which our attention holds as ``num_points``.

    Raises:
        ValueError: From :func:`check_points_scale`.
    """
    for new in [key for key in renamed if key.startswith(DERIVED)]:
        old, value = renamed[new]
        if old.endswith('num_points_scale'):
            del renamed[new]
            check_points_scale(old, value.flatten().tolist())
