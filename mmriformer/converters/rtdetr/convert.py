# Copyright (c) OpenMMLab. All rights reserved.
"""Official or HF RT-DETR and D-FINE weights to a checkpoint of our
model."""
import os.path as osp
from typing import Callable, Optional, Tuple

from ...utils.checkpoint import save_atomically
from .backbone_keys import OFFICIAL, backbone_layout, official_backbone_to_ours
from .checks import check_fit, check_hf_config, hf_class_names
from .hf_keys import hf_to_ours
from .official_keys import official_to_ours
from .sources import StateDict, detect_layout, load_source
from .variants import (BACKBONE_CONFIGS, describe_variant, pick_config,
                       repo_configs_dir, variant_name)


DFINE_LAYOUTS = ('hf_dfine', 'official_dfine')


def convert_state(state: StateDict) -> Tuple[StateDict, str]:
    """Convert a state dict of any known layout to ours.

    Returns:
        tuple: Our state dict and the layout it came from (see
        :func:`~.sources.detect_layout`).
    """
    # Imported here: mmriformer.converters.dfine builds on this package.
    from ..dfine import hf_dfine_to_ours, official_dfine_to_ours
    converters = dict(hf=hf_to_ours,
                      official=official_to_ours,
                      hf_dfine=hf_dfine_to_ours,
                      official_dfine=official_dfine_to_ours)
    layout = detect_layout(state)
    if layout == 'ours':
        return dict(state), layout
    return converters[layout](state), layout


def variant_rules(layout: str) -> Tuple[Callable, Callable, Callable,
                                        Callable]:
    """How to describe, name, pick the config of, and check the HF config
    of a layout's family (RT-DETR or D-FINE).

    Args:
        layout (str): From :func:`~.sources.detect_layout`.

    Returns:
        tuple: ``(describe, name, pick_config, check_hf_config)``.
    """
    from ..dfine import (check_hf_dfine_config, describe_dfine_variant,
                         dfine_variant_name, pick_dfine_config)
    if layout in DFINE_LAYOUTS:
        return (describe_dfine_variant, dfine_variant_name, pick_dfine_config,
                check_hf_dfine_config)
    return describe_variant, variant_name, pick_config, check_hf_config


def convert_checkpoint(src: str, out: str,
                       config: Optional[str] = None) -> str:
    """Convert ``src`` (RT-DETR, D-FINE or DEIM-D-FINE) into the mmdet
    checkpoint ``out``.

    The result is loaded strictly into the config's model before it is
    written, and written in full before it replaces ``out``:
    ``{'meta': {'dataset_meta': {'classes': COCO}, 'converted_from': ...},
    'state_dict': ...}``.

    An official ImageNet backbone file (``ResNet18_vd_pretrained_from_
    paddle.pth`` and the like) goes to :func:`convert_backbone`.

    Args:
        src (str): HF folder or official ``.pth`` (see
            :func:`~.sources.load_source`).
        out (str): Output ``.pth``.
        config (str, optional): Config of the target model; by default the
            baseline of the source's ResNet-vd depth (RT-DETR) or
            ``configs/dfine/dfine_hgnetv2_{n,s,m,l,x}_coco.py`` of its size
            (D-FINE; DEIM-D-FINE too, whose weights are D-FINE's: give a
            ``configs/deim/`` config to train on with DEIM's recipe).

    Returns:
        str: The config used.

    Raises:
        FileNotFoundError: The source or config is missing.
        ValueError: An unknown layout, a variant without a config, weights
            that do not fit the config, or a source that is not COCO's.
    """
    from mmdet.datasets import CocoDataset

    from ...apis import build_model, load_config, load_strict

    if osp.abspath(src) == osp.abspath(out):
        raise ValueError(f'OUT is the source {src}; give another path.')
    raw, hf_config, where = load_source(src)
    if is_official_backbone(raw):
        return convert_backbone(raw, src, out, config)
    state, layout = convert_state(raw)
    if layout == 'ours':
        raise ValueError(f'{src} already holds our layout; nothing to '
                         f'convert.')
    describe, name, pick, check_hf = variant_rules(layout)
    variant = describe(state)
    if config is None:
        config = pick(variant, repo_configs_dir())
    cfg = load_config(config)
    model = build_model(cfg)
    # Shapes first: a config of another size is the likelier mistake.
    check_fit(state, model.state_dict(), osp.basename(config),
              lambda weights: name(describe(weights)))
    if hf_config is not None:
        check_hf(hf_config, cfg.model)
    load_strict(model, src, config, dict(state_dict=state))

    classes = list(CocoDataset.METAINFO['classes'])
    names = hf_class_names(hf_config)
    if names is not None and len(names) != len(classes):
        raise ValueError(f'{src} has {len(names)} classes, COCO 80; give '
                         f'a COCO checkpoint.')
    ckpt = dict(meta=dict(dataset_meta=dict(classes=classes),
                          converted_from=dict(source=osp.abspath(src),
                                              layout=layout,
                                              weights=where,
                                              variant=name(variant),
                                              config=osp.abspath(config))),
                state_dict={k: v.contiguous()
                            for k, v in state.items()})
    save_atomically(ckpt, out)
    return config


def is_official_backbone(state: StateDict) -> bool:
    """Whether ``state`` is a bare lyuwenyu/RT-DETR ``PResNet`` (an
    ImageNet backbone file), with no detector keys."""
    try:
        return backbone_layout(state) == OFFICIAL and not any(
            k.startswith(('backbone.', 'encoder.', 'decoder.'))
            for k in state)
    except ValueError:
        return False


def convert_backbone(state: StateDict, src: str, out: str,
                     config: Optional[str] = None) -> str:
    """Convert an official ImageNet ``PResNet`` file into ``backbone.*``
    weights of our ``PResNet``.

    The result is loaded strictly into the config's backbone before it is
    written: ``{'meta': {'converted_from': ...}, 'state_dict':
    {'backbone.stem.0.weight': ..., ...}}``, for
    ``init_cfg=dict(type='Pretrained', checkpoint=out,
    prefix='backbone.')``. (Our ``PResNet`` also loads the official file
    itself, mapped the same way.)

    Args:
        state (dict[str, Tensor]): The official weights.
        src (str): Their file, recorded in the meta.
        out (str): Output ``.pth``.
        config (str, optional): Config of the target model; by default the
            baseline of the source's depth.

    Returns:
        str: The config used.

    Raises:
        FileNotFoundError: The config is missing.
        ValueError: An unknown depth or weights that do not fit.
    """
    from ...apis import build_model

    weights = {
        f'backbone.{k}': v.contiguous()
        for k, v in official_backbone_to_ours(state).items()
    }
    variant = describe_variant(weights)
    if config is None:
        name = BACKBONE_CONFIGS.get(variant['depth'])
        if name is None:
            raise ValueError(
                f'{src} holds a {variant["block"]} ResNet-vd with blocks '
                f'{variant["stage_blocks"]}, not one of the depths '
                f'{sorted(BACKBONE_CONFIGS)}; pass a config with --config.')
        config = osp.join(repo_configs_dir(), name)
    backbone = build_model(config).backbone
    check_fit(weights,
              {f'backbone.{k}': v
               for k, v in backbone.state_dict().items()},
              osp.basename(config))
    ckpt = dict(meta=dict(converted_from=dict(source=osp.abspath(src),
                                              layout='official backbone',
                                              depth=variant['depth'],
                                              config=osp.abspath(config))),
                state_dict=weights)
    save_atomically(ckpt, out)
    return config
