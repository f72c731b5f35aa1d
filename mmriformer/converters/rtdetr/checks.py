# Copyright (c) OpenMMLab. All rights reserved.
"""Why converted weights do not fit a config, in words."""
from typing import Callable, List, Optional

from .sources import StateDict
from .variants import describe_variant, variant_name


def check_fit(state: StateDict,
              target: StateDict,
              config: str = 'the config',
              summary: Optional[Callable[[StateDict], str]] = None) -> None:
    """Raise a ValueError that names every key that does not fit.

    Args:
        state (dict[str, Tensor]): Converted weights.
        target (dict[str, Tensor]): The model's own ``state_dict()``.
        config (str): The config's name, for the message.
        summary (Callable, optional): Describes a state dict's variant in
            words; by default as an RT-DETR (:func:`~.variants.
            describe_variant`).

    Raises:
        ValueError: Keys are missing, unexpected, or of another shape. The
            message also compares the two variants, and explains a basic
            ResNet-vd config built on mmdet's ``ResNetV1d``, which lacks the
            stage-1 projection shortcut of the official one.
    """
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    shapes = [(k, tuple(state[k].shape), tuple(target[k].shape)) for k in state
              if k in target and state[k].shape != target[k].shape]
    if not (missing or unexpected or shapes):
        return
    lines = []
    if summary is None:

        def summary(weights):
            return variant_name(describe_variant(weights))

    source, model = summary(state), summary(target)
    if source != model:
        lines.append(f'The weights are {source}; {config} builds {model}.')
    if ('backbone.layer1.0.downsample.0.weight' in state and not any(
            k.startswith('backbone.layer1.0.downsample.') for k in target)):
        lines.append(
            "Official ResNet18/34-vd (PResNet's BasicBlock, HF's "
            'RTDetrResNetBasicLayer) put a 1x1 conv + BN projection on the '
            'shortcut of the first block of stage 1 although it keeps 64 '
            "channels at stride 1; mmdet's ResNetV1d (mmdet/models/layers/"
            'res_layer.py, ResLayer) adds one only where the stride or '
            'the width changes, so its layer1.0 has an identity shortcut. '
            "Use backbone=dict(type='PResNet', ...), which has that "
            'projection, as configs/rtdetr_r18vd.py and rtdetr_r34vd.py do.')
    for key, got, want in shapes[:10]:
        lines.append(f'{key}: the weights have shape {got}, {config} '
                     f'expects {want}.')
    if missing:
        lines.append(f'{len(missing)} keys of {config} are not in the '
                     f'weights: {", ".join(missing[:8])}'
                     f'{" ..." if len(missing) > 8 else ""}')
    if unexpected:
        lines.append(f'{len(unexpected)} converted keys are not in '
                     f'{config}: {", ".join(unexpected[:8])}'
                     f'{" ..." if len(unexpected) > 8 else ""}')
    raise ValueError('The converted weights do not fit ' + config + ':\n  ' +
                     '\n  '.join(lines))


def check_hf_config(hf: dict, model_cfg: dict) -> None:
    """Refuse HF configs whose behaviour the weights cannot show and our
    model does not have.

    Shapes catch most differences; these settings change the function
    without changing a shape.

    Args:
        hf (dict): The HF ``config.json``.
        model_cfg (dict): Our config's ``model`` (an mmengine ConfigDict or
            a dict).

    Raises:
        ValueError: Listing every setting that differs.
    """
    neck, decoder = model_cfg['neck'], model_cfg['decoder']
    layer = decoder.get('layer_cfg', {})
    backbone = hf.get('backbone_config') or {}
    expected = {
        'num_queries': model_cfg.get('num_queries', 300),
        'encoder_attention_heads': neck.get('num_heads', 8),
        'decoder_attention_heads': layer.get('num_heads', 8),
        # HF has one count for all levels; ours may list them per level.
        'decoder_n_points': _one_count(layer.get('num_points', 4)),
        'num_feature_levels': layer.get('num_levels', 3),
        'encoder_layers': neck.get('num_encoder_layers', 1),
        'encode_proj_layers': list(neck.get('use_encoder_idx', [2])),
        'feat_strides': list(neck.get('feat_strides', [8, 16, 32])),
        'positional_encoding_temperature': 10000,
        'encoder_activation_function': 'gelu',
        'activation_function': 'silu',
        'decoder_activation_function': 'relu',
        'normalize_before': False,
        'learn_initial_query': False,
        'with_box_refine': True,
        'layer_norm_eps': 1e-5,
        'batch_norm_eps': 1e-5,
    }
    problems = []
    for key, want in expected.items():
        if key in hf and hf[key] != want:
            problems.append(f'{key}={hf[key]!r} (ours: {want!r})')
    for key, want in (('hidden_act', 'relu'), ('downsample_in_bottleneck',
                                               False),
                      ('downsample_in_first_stage', False), ('embedding_size',
                                                             64)):
        if key in backbone and backbone[key] != want:
            problems.append(f'backbone_config.{key}={backbone[key]!r} '
                            f'(ours: {want!r})')
    if backbone.get('model_type', 'rt_detr_resnet') != 'rt_detr_resnet':
        problems.append(f'backbone_config.model_type='
                        f'{backbone.get("model_type")!r} (ours: a '
                        f"ResNet-vd, 'rt_detr_resnet')")
    if problems:
        raise ValueError(
            'The HF config differs from ours in settings that the weights '
            'do not show: ' + '; '.join(problems) + '.')


def hf_class_names(hf: Optional[dict]) -> Optional[List[str]]:
    """The class names of an HF config's ``id2label``, in label order."""
    if not hf or not hf.get('id2label'):
        return None
    id2label = {int(k): v for k, v in hf['id2label'].items()}
    return [id2label[i] for i in sorted(id2label)]


def _one_count(num_points):
    """A per-level list of equal counts as that count; else unchanged."""
    if isinstance(num_points, (list, tuple)) and len(set(num_points)) == 1:
        return num_points[0]
    return num_points
