# Copyright (c) OpenMMLab. All rights reserved.
"""Which RT-DETR a state dict in our layout is, and its baseline config."""
import os.path as osp

from .renaming import count_indices
from .sources import StateDict

# The configs/ file of each (depth, encoder expansion): the PResNet
# baselines.
BASELINE_CONFIGS = {
    (18, 0.5): 'rtdetr_r18vd.py',
    (34, 0.5): 'rtdetr_r34vd.py',
    (50, 0.5): 'rtdetr_r50vd_m.py',
    (50, 1.0): 'rtdetr_r50vd.py',
    (101, 1.0): 'rtdetr_r101vd.py',
}
# The configs/ file of each depth, for ImageNet backbone weights.
BACKBONE_CONFIGS = {
    18: 'rtdetr_r18vd.py',
    34: 'rtdetr_r34vd.py',
    50: 'rtdetr_r50vd.py',
    101: 'rtdetr_r101vd.py',
}
# ResNet depth from the block type and the blocks per stage.
RESNET_DEPTHS = {
    ('basic', (2, 2, 2, 2)): 18,
    ('basic', (3, 4, 6, 3)): 34,
    ('bottleneck', (3, 4, 6, 3)): 50,
    ('bottleneck', (3, 4, 23, 3)): 101,
    ('bottleneck', (3, 8, 36, 3)): 152,
}


def describe_variant(state: StateDict) -> dict:
    """Summarise a state dict in our layout: what config it needs.

    Returns:
        dict: ``depth`` (None when unknown), ``block`` ('basic' or
        'bottleneck'), ``stage_blocks``, ``encoder_dims``,
        ``encoder_ffn``, ``expansion``, ``decoder_layers``,
        ``decoder_dims``, ``num_classes``; entries whose keys are missing
        are None.
    """
    keys = list(state)

    def shape(key, dim):
        return state[key].shape[dim] if key in state else None

    block = 'bottleneck' if 'backbone.layer1.0.conv3.weight' in state \
        else 'basic'
    stage_blocks = tuple(
        count_indices(keys, rf'backbone\.layer{i}\.(\d+)\.')
        for i in range(1, 5))
    encoder_dims = shape('neck.input_proj.0.conv.weight', 0)
    hidden = shape('neck.fpn_blocks.0.conv1.conv.weight', 0)
    return dict(depth=RESNET_DEPTHS.get((block, stage_blocks)),
                block=block,
                stage_blocks=stage_blocks,
                encoder_dims=encoder_dims,
                encoder_ffn=shape('neck.encoder.0.0.linear1.weight', 0),
                expansion=(hidden / encoder_dims
                           if hidden is not None and encoder_dims else None),
                decoder_layers=count_indices(keys,
                                             r'decoder\.layers\.(\d+)\.'),
                decoder_dims=shape('decoder.layers.0.linear1.weight', 1),
                num_classes=shape('bbox_head.cls_branches.0.weight', 0))


def variant_name(variant: dict) -> str:
    """A short description, e.g. 'R50vd, encoder 256 (FFN 1024, expansion
    1.0), 6 decoder layers of 256, 80 classes'."""
    depth = variant['depth']
    net = f'R{depth}vd' if depth else (
        f'a {variant["block"]} ResNet with blocks {variant["stage_blocks"]}')
    return (f'{net}, encoder {variant["encoder_dims"]} (FFN '
            f'{variant["encoder_ffn"]}, expansion {variant["expansion"]}), '
            f'{variant["decoder_layers"]} decoder layers of '
            f'{variant["decoder_dims"]}, {variant["num_classes"]} classes')


def pick_config(variant: dict, configs_dir: str) -> str:
    """The baseline config of a variant's backbone depth and encoder
    expansion.

    Args:
        variant (dict): From :func:`describe_variant`.
        configs_dir (str): The repository's ``configs`` folder.

    Returns:
        str: Path of the config (checked later against the whole variant).

    Raises:
        ValueError: No baseline config has this depth and expansion.
    """
    name = BASELINE_CONFIGS.get((variant['depth'], variant['expansion']))
    if name is None:
        known = ', '.join(f'R{depth}vd at expansion {expansion} ({config})'
                          for (depth, expansion), config in
                          BASELINE_CONFIGS.items())
        raise ValueError(
            f'No baseline config for {variant_name(variant)}; the baselines '
            f'are {known}. Write a config for this variant and pass it with '
            f'--config.')
    return osp.join(configs_dir, name)


def repo_configs_dir() -> str:
    """The ``configs`` folder of a source checkout of this repository."""
    package = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    return osp.join(osp.dirname(package), 'configs')
