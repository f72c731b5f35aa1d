# Copyright (c) OpenMMLab. All rights reserved.
"""DEIM's policy: stage pipelines and the epochs that switch them."""
import copy
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, HOOKS
from mmengine.config import Config

from mmriformer.utils.deim_recipe import deim_changes, deim_policy

MOSAIC = dict(type='DEIMMosaic', output_size=32, rotation_range=10,
              fill_value=0)
# DEIM's pipeline, by mmdet's transforms (see configs/_base_/datasets).
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    MOSAIC,
    dict(type='RandomPhotometricDistort', p=0.5),
    dict(type='Expand', mean=[0, 0, 0], to_rgb=True, ratio_range=(1, 4),
         prob=0.5),
    dict(type='RandomIoUCrop', prob=0.8),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackDetInputs')
]
OFF = ['LoadImageFromFile', 'LoadAnnotations', 'RandomFlip', 'Resize',
       'FilterAnnotations', 'PackDetInputs']
MOSAIC_OR_ZOOM_CROP = OFF[:2] + ['RandomChoice'] + OFF[2:]
NO_MOSAIC = OFF[:2] + ['RandomPhotometricDistort', 'Expand',
                       'RandomIoUCrop'] + OFF[2:]


def types(pipeline):
    return [t['type'] for t in pipeline]


def test_stages():
    given = copy.deepcopy(PIPELINE)
    first, hooks = deim_policy(given, mosaic_prob=0.3)
    assert given == PIPELINE
    assert types(first) == OFF
    assert [h['switch_epoch'] for h in hooks] == [4, 29, 50]
    assert {h['type'] for h in hooks} == {'PipelineSwitchHook'}
    stages = [h['switch_pipeline'] for h in hooks]
    assert [types(s) for s in stages] == [MOSAIC_OR_ZOOM_CROP, NO_MOSAIC, OFF]
    choice = stages[0][2]
    assert choice['prob'] == [0.3, 0.7]
    assert [types(branch) for branch in choice['transforms']] == [
        ['DEIMMosaic', 'RandomPhotometricDistort'],
        ['RandomPhotometricDistort', 'Expand', 'RandomIoUCrop']
    ]
    assert choice['transforms'][0][0] == MOSAIC


def test_other_ops():
    first, hooks = deim_policy(PIPELINE, ops=['DEIMMosaic'])
    assert types(first) == types(PIPELINE[:2] + PIPELINE[3:])
    assert types(hooks[2]['switch_pipeline']) == types(first)


def run_epochs(shapes_cfg, epochs):
    """The pipeline's transform types at each epoch, as hooks switch it.

    Args:
        shapes_cfg (dict): Dataset arguments.
        epochs (Sequence[int]): The epochs the runner goes through.

    Returns:
        list[list[str]]: The types per epoch.
    """
    first, hooks = deim_policy(PIPELINE, epochs=(2, 4, 6))
    dataset = DATASETS.build(dict(shapes_cfg, pipeline=first))
    hooks = [HOOKS.build(h) for h in hooks]
    runner = SimpleNamespace(
        train_dataloader=SimpleNamespace(dataset=dataset),
        logger=SimpleNamespace(info=lambda message: None))
    seen = []
    for epoch in epochs:
        runner.epoch = epoch
        for hook in hooks:
            hook.before_train_epoch(runner)
        seen.append(
            [type(t).__name__ for t in dataset.pipeline.transforms])
        # Each stage runs on the real dataset.
        for i in range(len(dataset)):
            out = dataset[i]
            assert out['inputs'].shape == (3, 64, 64)
            boxes = out['data_samples'].gt_instances.bboxes.tensor
            assert ((boxes >= 0) & (boxes <= 64)).all()
    return seen


def test_switches_exactly_at_the_epochs(shapes_cfg):
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    seen = run_epochs(shapes_cfg, range(8))
    assert seen == [OFF] * 2 + [MOSAIC_OR_ZOOM_CROP] * 2 + [NO_MOSAIC] * 2 \
        + [OFF] * 2


def test_resume_switches_to_the_stage_of_its_epoch(shapes_cfg):
    assert run_epochs(shapes_cfg, [5, 6]) == [NO_MOSAIC, OFF]
    assert run_epochs(shapes_cfg, [3, 4]) == [MOSAIC_OR_ZOOM_CROP, NO_MOSAIC]


@pytest.mark.parametrize('pipeline, kwargs, match', [
    (PIPELINE[:2], {}, 'one DEIMMosaic'),
    (PIPELINE[:3] + [MOSAIC], {}, 'one DEIMMosaic'),
    ([dict(MOSAIC, use_cache=False)], {}, 'use_cache=True'),
    (PIPELINE, dict(epochs=(4, 4, 50)), 'epochs'),
    (PIPELINE, dict(epochs=(4, 29)), 'epochs'),
    (PIPELINE, dict(mosaic_prob=2), 'mosaic_prob'),
])
def test_bad_arguments_raise(pipeline, kwargs, match):
    with pytest.raises(ValueError, match=match):
        deim_policy(pipeline, **kwargs)


def recipe_base(pipeline):
    """The least of an RT-DETR config that deim_changes reads."""
    return Config(dict(
        model=dict(data_preprocessor=dict(batch_augments=None),
                   backbone=dict(type='RIFormer')),
        train_pipeline=pipeline, custom_hooks=[]))


@pytest.mark.parametrize('kwargs, message', [
    (dict(max_epochs=10, no_aug_epoch=7), 'flat_epoch=9'),
    (dict(max_epochs=10, no_aug_epoch=1, start_epoch=5, flat_epoch=5),
     'start_epoch < flat_epoch'),
])
def test_deim_changes_bad_epochs(kwargs, message):
    base = recipe_base(PIPELINE[:2] + PIPELINE[3:])
    with pytest.raises(ValueError, match=message):
        deim_changes(base, **kwargs)


def test_deim_changes_needs_annotations():
    base = recipe_base([PIPELINE[0]] + PIPELINE[3:])
    with pytest.raises(ValueError, match='LoadAnnotations before'):
        deim_changes(base, max_epochs=20, no_aug_epoch=2)
