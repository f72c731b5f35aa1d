# Copyright (c) OpenMMLab. All rights reserved.
"""RT-DETRv2's recipe, as changes to an RT-DETR config.

``configs/rtdetrv2_*.py`` make the same changes to different RT-DETR
configs. mmengine's inheritance cannot hold such a block once: a base file
cannot read the config it is combined with, and two bases may not both set
``model`` or ``custom_hooks``. So each of those configs inherits its RT-DETR
config and calls :func:`rtdetrv2_changes` on it (mmengine allows the import
in a config after ``_base_``).
"""
from typing import Optional, Tuple

# The strong augmentations v2 drops at the end: photometric distortion,
# zoom-out and IoU crop.
STRONG_AUGMENTS = ('RandomPhotometricDistort', 'Expand', 'RandomIoUCrop')


def strong_augment_switch(base: dict, stop_epoch: int) -> dict:
    """The hook that drops :data:`STRONG_AUGMENTS` from the base's training
    pipeline at epoch ``stop_epoch`` (0-based).

    Args:
        base (dict): The config whose ``train_pipeline`` is switched.
        stop_epoch (int): The first epoch without strong augmentation.

    Returns:
        dict: A ``PipelineSwitchHook`` config.
    """
    return dict(
        type='PipelineSwitchHook',
        switch_epoch=stop_epoch,
        switch_pipeline=[
            transform for transform in base.train_pipeline
            if transform['type'] not in STRONG_AUGMENTS
        ])


def rtdetrv2_changes(base: dict,
                     stop_epoch: int,
                     multi_scale: bool = True,
                     backbone_lr_mult: Optional[float] = None,
                     decay_biases: bool = True) -> Tuple[dict, dict, list]:
    """The ``model``, ``optim_wrapper`` and ``custom_hooks`` of RT-DETRv2's
    recipe on an RT-DETR config.

    Sampling points are given per level (the same 4 on each, in v2's form),
    and from epoch ``stop_epoch`` (0-based) on the training pipeline drops
    :data:`STRONG_AUGMENTS` (a ``PipelineSwitchHook``) and batches stop
    being multi-scale.

    Args:
        base (dict): The RT-DETR config, i.e. the ``_base_`` of the calling
            config.
        stop_epoch (int): The first epoch without strong augmentation.
        multi_scale (bool): Keep the base's multi-scale batches until
            ``stop_epoch``; False trains at one size throughout (the
            official ``scales: ~``). Defaults to True.
        backbone_lr_mult (float, optional): The backbone's learning rate
            multiplier; None keeps the base's. Defaults to None.
        decay_biases (bool): v2's parameter groups (``norm|bn``, not
            ``bias``): biases, attention's ``in_proj_bias`` included, are
            decayed; norms are not. False keeps the base's groups.
            Defaults to True.

    Returns:
        tuple[dict, dict, list]: What the config sets as ``model`` and
        ``optim_wrapper`` (merged into the base's) and as ``custom_hooks``
        (the base's, and the pipeline switch).
    """
    augments = None
    if multi_scale:
        augments = [
            dict(augment, stop_epoch=stop_epoch)
            for augment in base.model.data_preprocessor.batch_augments
        ]
    model = dict(
        data_preprocessor=dict(batch_augments=augments),
        decoder=dict(layer_cfg=dict(num_points=[4, 4, 4])))

    paramwise_cfg = dict()
    if backbone_lr_mult is not None:
        paramwise_cfg['custom_keys'] = {
            'backbone': dict(lr_mult=backbone_lr_mult)
        }
    if decay_biases:
        paramwise_cfg.update(bias_decay_mult=1.0, flat_decay_mult=1.0)

    return (model, dict(paramwise_cfg=paramwise_cfg),
            base.custom_hooks + [strong_augment_switch(base, stop_epoch)])
