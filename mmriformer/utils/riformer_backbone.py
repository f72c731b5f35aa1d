# Copyright (c) OpenMMLab. All rights reserved.
"""The RIFormer backbone of the detection configs, started from
mmpretrain's ImageNet weights: :func:`riformer_backbone`, called by
``configs/rtdetr_riformer_*.py``, ``configs/dfine/dfine_riformer_*.py``
and their base ``configs/_base_/models/rtdetr_riformer.py``."""

# mmpretrain's official ImageNet-1k RIFormer checkpoints (its model zoo), by
# arch.
RIFORMER_URL = 'https://download.openmmlab.com/mmclassification/v1/riformer/'
RIFORMER_CHECKPOINTS = {
    's12': RIFORMER_URL + 'riformer-s12_32xb128_in1k_20230406-6741ce71.pth',
    's24': RIFORMER_URL + 'riformer-s24_32xb128_in1k_20230406-fdab072a.pth',
    's36': RIFORMER_URL + 'riformer-s36_32xb128_in1k_20230406-fdfcd3b0.pth',
    'm36': RIFORMER_URL + 'riformer-m36_32xb128_in1k_20230406-2fcb9d9b.pth',
    'm48': RIFORMER_URL + 'riformer-m48_32xb128_in1k_20230406-2b9d1abf.pth',
}


def riformer_backbone(arch: str) -> dict:
    """The config of a RIFormer detection backbone with mmpretrain's
    ImageNet weights.

    Outputs at strides 8, 16 and 32 (``out_indices`` 2, 4, 6), drop path
    0.1, nothing frozen; the weights are the ``backbone.`` part of the
    official ImageNet classifier checkpoint of ``arch``.

    Args:
        arch (str): One of ``'s12'``, ``'s24'``, ``'s36'``, ``'m36'``,
            ``'m48'``.

    Returns:
        dict: The ``model.backbone`` config.

    Raises:
        ValueError: ``arch`` has no ImageNet checkpoint here.
    """
    if arch not in RIFORMER_CHECKPOINTS:
        raise ValueError(
            f'No ImageNet checkpoint for RIFormer arch {arch!r}; known '
            f'archs: {", ".join(RIFORMER_CHECKPOINTS)}. For another arch, '
            f'write the backbone dict with its own init_cfg.')
    return dict(
        type='RIFormer',
        arch=arch,
        out_indices=(2, 4, 6),
        drop_path_rate=0.1,
        frozen_stages=-1,
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint=RIFORMER_CHECKPOINTS[arch]))
