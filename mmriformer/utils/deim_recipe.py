# Copyright (c) OpenMMLab. All rights reserved.
"""DEIM's augmentation policy ("Dense O2O") as pipelines and switch hooks.

DEIM switches augmentations by epoch, ``policy.epoch: [a, b, c]`` with
``policy.ops`` (0-based epochs):

- ``[0, a)``: none of ``ops``;
- ``[a, b)``: per image, the mosaic with probability ``mosaic_prob``,
  and then no zoom-out or IoU crop; the other ops as usual;
- ``[b, c)``: all of ``ops`` but the mosaic;
- from ``c`` on: none of ``ops``.

:func:`deim_policy` turns a full training pipeline into the first stage's
pipeline and one mmdet ``PipelineSwitchHook`` per boundary; each switches
once, and after a resume all whose epoch has passed switch in order, so the
last one sets the pipeline. The mosaic and zoom-out/IoU crop exclusion is
mmcv's ``RandomChoice`` between the two branches; the mosaic in it takes
its other images from its cache (``use_cache=True``): in a branch it gets
no ``mix_results`` from ``MultiImageMixDataset``.

The rest of DEIM's schedule needs no hook: the batch mixup is
``DEIMBatchMixUp(prob, epochs=mixup_epochs)`` and the end of multi-scale
``BatchRandomChoiceResize(stop_epoch=c)``, both batch augments that read
the epoch from mmengine's ``MessageHub``.
"""
from numbers import Real
from typing import List, Sequence, Tuple

# DEIM's policy ops, by our names: mmdet's Expand is RT-DETR's zoom-out.
POLICY_OPS = ('DEIMMosaic', 'RandomPhotometricDistort', 'Expand',
              'RandomIoUCrop')
# What an image with a mosaic skips.
NOT_WITH_MOSAIC = ('Expand', 'RandomIoUCrop')


def _without(pipeline: List[dict], types: Sequence[str]) -> List[dict]:
    """The pipeline without the transforms of the given types."""
    return [t for t in pipeline if t['type'] not in types]


def _mosaic_stage(pipeline: List[dict], mosaic_prob: float) -> List[dict]:
    """The pipeline with the mosaic or zoom-out and IoU crop, per image.

    The transforms from the mosaic to the last zoom-out or IoU crop become
    a ``RandomChoice`` of two branches: with the mosaic and without
    :data:`NOT_WITH_MOSAIC`, or without the mosaic.

    Args:
        pipeline (list[dict]): The full pipeline, one ``DEIMMosaic`` in it.
        mosaic_prob (float): The chance of the first branch.

    Returns:
        list[dict]: The pipeline of DEIM's second stage.
    """
    types = [t['type'] for t in pipeline]
    if types.count('DEIMMosaic') != 1:
        raise ValueError(f'the pipeline must hold one DEIMMosaic, got '
                         f'{types}')
    start = types.index('DEIMMosaic')
    if not pipeline[start].get('use_cache', True):
        raise ValueError(
            'DEIMMosaic must take its images from its cache '
            '(use_cache=True): inside RandomChoice it gets no mix_results')
    after = [i for i in range(start, len(types))
             if types[i] in NOT_WITH_MOSAIC]
    stop = (after[-1] if after else start) + 1
    block = pipeline[start:stop]
    choice = dict(
        type='RandomChoice',
        transforms=[_without(block, NOT_WITH_MOSAIC), block[1:]],
        prob=[mosaic_prob, 1 - mosaic_prob])
    return pipeline[:start] + [choice] + pipeline[stop:]


def deim_policy(pipeline: List[dict],
                epochs: Sequence[int] = (4, 29, 50),
                mosaic_prob: float = 0.5,
                ops: Sequence[str] = POLICY_OPS) -> Tuple[List[dict], list]:
    """DEIM's augmentation stages for an mmdet training pipeline.

    Args:
        pipeline (list[dict]): The full training pipeline: one
            ``DEIMMosaic`` (``use_cache=True``) before the zoom-out
            (``Expand``) and IoU crop.
        epochs (Sequence[int]): DEIM's ``policy.epoch``, three increasing
            0-based epochs. Defaults to DEIM's (4, 29, 50).
        mosaic_prob (float): DEIM's ``mosaic_prob``: the chance of the
            mosaic per image in the second stage. Defaults to 0.5.
        ops (Sequence[str]): DEIM's ``policy.ops``, by type. Defaults to
            :data:`POLICY_OPS`.

    Returns:
        tuple[list[dict], list[dict]]: The training pipeline of the first
        stage, and the three ``PipelineSwitchHook`` configs of the others.
    """
    if (len(epochs) != 3 or not all(isinstance(e, int) for e in epochs)
            or not 0 <= epochs[0] < epochs[1] < epochs[2]):
        raise ValueError(f'epochs must be three increasing ints >= 0, got '
                         f'{epochs!r}')
    if not isinstance(mosaic_prob, Real) or not 0 <= mosaic_prob <= 1:
        raise ValueError(f'mosaic_prob must be in [0, 1], got '
                         f'{mosaic_prob!r}')
    off = _without(pipeline, ops)
    stages = [
        _mosaic_stage(pipeline, mosaic_prob),
        _without(pipeline, ['DEIMMosaic']), off
    ]
    hooks = [
        dict(type='PipelineSwitchHook', switch_epoch=epoch,
             switch_pipeline=stage) for epoch, stage in zip(epochs, stages)
    ]
    return off, hooks
