# Copyright (c) OpenMMLab. All rights reserved.
"""Which D-FINE a state dict in our layout is, and its config.

DEIM-D-FINE's weights (Intellindust-AI-Lab/DEIM) have D-FINE's layout and
sizes: only the training recipe differs, so they are converted into the
D-FINE config of their size unless ``--config`` names a
``configs/deim/deim_hgnetv2_*`` one.
"""
import os.path as osp

from ..rtdetr.renaming import count_indices
from ..rtdetr.sources import StateDict

# The configs/ file of each (backbone arch, encoder width, decoder layers):
# the official sizes (Peterande/D-FINE configs/dfine/*.yml).
DFINE_CONFIGS = {
    ('B0', 128, 3): 'dfine/dfine_hgnetv2_n_coco.py',
    ('B0', 256, 3): 'dfine/dfine_hgnetv2_s_coco.py',
    ('B2', 256, 4): 'dfine/dfine_hgnetv2_m_coco.py',
    ('B4', 256, 6): 'dfine/dfine_hgnetv2_l_coco.py',
    ('B5', 384, 6): 'dfine/dfine_hgnetv2_x_coco.py',
}
SIZE_NAMES = dict(zip(DFINE_CONFIGS, 'NSMLX'))


def hgnetv2_arch(state: StateDict):
    """The HGNetV2 arch whose stem and stage widths the backbone has, or
    None."""
    # Imported here: the backbone module imports this package's key maps.
    from ...models.backbones.hgnetv2 import HGNetV2

    def out(key):
        return state[key].shape[0] if key in state else None

    widths = (out('backbone.stem.stem1.conv.weight'),
              out('backbone.stem.stem4.conv.weight'),
              tuple(
                  out(f'backbone.stages.{i}.blocks.0.aggregation.1.conv.'
                      f'weight') for i in range(4)))
    for arch, setting in HGNetV2.arch_settings.items():
        if widths == (*setting['stem'],
                      tuple(stage[2] for stage in setting['stages'])):
            return arch
    return None


def describe_dfine_variant(state: StateDict) -> dict:
    """Summarise a D-FINE state dict in our layout: what config it needs.

    Returns:
        dict: ``arch`` (the HGNetV2's, None when unknown),
        ``encoder_levels``, ``encoder_dims``, ``decoder_layers``,
        ``decoder_dims`` and ``num_classes``; entries whose keys are
        missing are None.
    """
    keys = list(state)

    def shape(key, dim):
        return state[key].shape[dim] if key in state else None

    return dict(arch=hgnetv2_arch(state),
                encoder_levels=count_indices(keys,
                                             r'neck\.input_proj\.(\d+)\.'),
                encoder_dims=shape('neck.input_proj.0.conv.weight', 0),
                decoder_layers=count_indices(keys,
                                             r'decoder\.layers\.(\d+)\.'),
                decoder_dims=shape('decoder.layers.0.linear1.weight', 1),
                num_classes=shape('bbox_head.cls_branches.0.weight', 0))


def dfine_variant_name(variant: dict) -> str:
    """A short description, e.g. 'D-FINE-N (HGNetV2-B0, encoder 128 on 2
    levels, 3 decoder layers of 128, 80 classes)'."""
    size = SIZE_NAMES.get((variant['arch'], variant['encoder_dims'],
                           variant['decoder_layers']))
    return (f'{"D-FINE-" + size if size else "a D-FINE of no official size"}'
            f' (HGNetV2-{variant["arch"] or "?"}, encoder '
            f'{variant["encoder_dims"]} on {variant["encoder_levels"]} '
            f'levels, {variant["decoder_layers"]} decoder layers of '
            f'{variant["decoder_dims"]}, {variant["num_classes"]} classes)')


def pick_dfine_config(variant: dict, configs_dir: str) -> str:
    """The config of a variant's official size.

    Args:
        variant (dict): From :func:`describe_dfine_variant`.
        configs_dir (str): The repository's ``configs`` folder.

    Returns:
        str: Path of the config (checked later against the whole variant).

    Raises:
        ValueError: No official size has this backbone, encoder width and
            number of decoder layers.
    """
    name = DFINE_CONFIGS.get((variant['arch'], variant['encoder_dims'],
                              variant['decoder_layers']))
    if name is None:
        known = ', '.join(
            f'{SIZE_NAMES[key]}: HGNetV2-{key[0]}, encoder {key[1]}, '
            f'{key[2]} decoder layers' for key in DFINE_CONFIGS)
        raise ValueError(
            f'No D-FINE config for {dfine_variant_name(variant)}; the '
            f'official sizes are {known}. Write a config for this variant '
            f'and pass it with --config.')
    return osp.join(configs_dir, name)


def check_hf_dfine_config(hf: dict, model_cfg: dict) -> None:
    """Refuse HF D-FINE configs whose behaviour the weights cannot show and
    our model does not have.

    Args:
        hf (dict): The HF ``config.json``.
        model_cfg (dict): Our config's ``model``.

    Raises:
        ValueError: Listing every setting that differs.
    """
    neck, decoder = model_cfg['neck'], model_cfg['decoder']
    layer = decoder.get('layer_cfg', {})
    points = list(layer.get('num_points', [4]))
    expected = {
        'num_queries': model_cfg.get('num_queries', 300),
        'encoder_attention_heads': neck.get('num_heads', 8),
        'decoder_attention_heads': layer.get('num_heads', 8),
        'decoder_n_points': points,
        'num_feature_levels': layer.get('num_levels', 3),
        'encoder_layers': neck.get('num_encoder_layers', 1),
        'encode_proj_layers': list(neck.get('use_encoder_idx', [2])),
        'feat_strides': list(neck.get('feat_strides', [8, 16, 32])),
        'eval_idx': decoder.get('eval_idx', -1),
        'layer_scale': 1,
        'encoder_activation_function': 'gelu',
        'activation_function': 'silu',
        'decoder_activation_function': 'relu',
        'decoder_method': 'default',
        'decoder_offset_scale': 0.5,
        'learn_initial_query': False,
        'normalize_before': False,
    }
    problems = []
    for key, want in expected.items():
        got = hf.get(key)
        if key == 'decoder_n_points' and isinstance(got, int):
            got = [got] * len(points)
        if key in hf and got != want:
            problems.append(f'{key}={hf[key]!r} (ours: {want!r})')
    if problems:
        raise ValueError(
            'The HF config differs from ours in settings that the weights '
            'do not show: ' + '; '.join(problems) + '.')
