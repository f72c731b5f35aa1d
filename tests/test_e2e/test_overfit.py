# Copyright (c) OpenMMLab. All rights reserved.
"""Proof that the detector learns: the demo model, trained from scratch with
the real mmdet Runner, overfits four images (about 2 minutes on 2 cores), in
float32 and in bfloat16 mixed precision alike."""
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

ROOT = Path(__file__).parents[2]
SIZE = 160
ITERS = 300


@pytest.mark.slow
@pytest.mark.parametrize('optim_wrapper',
                         ['OptimWrapper', 'AutocastOptimWrapper'])
def test_tiny_model_overfits_four_images(tmp_path, optim_wrapper):
    cfg = Config.fromfile(ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py')
    data = dict(
        type='SyntheticShapesDataset',
        data_root=str(tmp_path / 'data'),
        metainfo=cfg.metainfo,
        ann_file='annotations/train.json',
        data_prefix=dict(img='train/'),
        num_images=4,
        image_size=(SIZE, SIZE),
        seed=3,
        empty_ratio=0,
        min_size=SIZE // 8,
        max_size=SIZE // 2)
    resize = dict(type='Resize', scale=(SIZE, SIZE), keep_ratio=False)
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True), resize,
        dict(type='PackDetInputs')
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'), resize,
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                        'scale_factor'))
    ]
    cfg.merge_from_dict({
        'work_dir': str(tmp_path / 'work_dir'),
        'model.data_preprocessor.batch_augments': None,
        'optim_wrapper.type': optim_wrapper,
        'optim_wrapper.optimizer.lr': 1e-3,
        'log_processor.by_epoch': False,
        'default_hooks.logger.interval': 10,
    })
    cfg.train_dataloader = dict(
        batch_size=4, num_workers=0,
        sampler=dict(type='InfiniteSampler', shuffle=True),
        dataset=dict(data, pipeline=train_pipeline))
    cfg.val_dataloader = dict(
        batch_size=4, num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(data, pipeline=test_pipeline, test_mode=True))
    cfg.val_evaluator = dict(
        type='CocoMetric', metric='bbox',
        ann_file=str(tmp_path / 'data/annotations/train.json'))
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=ITERS, val_interval=ITERS)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=20)
    ]
    cfg.custom_hooks = []
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=ITERS, by_epoch=False)
    for key in ('test_dataloader', 'test_evaluator', 'test_cfg'):
        cfg.pop(key)

    runner = Runner.from_cfg(cfg)
    runner.train()

    losses = runner.message_hub.get_scalar('train/loss').data[0]
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    mAP = runner.message_hub.get_scalar('val/coco/bbox_mAP').current()
    assert np.isfinite(losses).all()
    print(f'{optim_wrapper}: loss {first:.2f} -> {last:.2f} '
          f'({first / last:.1f}x), '
          f'mAP {mAP:.3f} after {ITERS} iterations')
    assert first / last >= 4
    assert mAP >= 0.9


def test_num_classes_must_match_the_dataset(tmp_path):
    cfg = Config.fromfile(ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py')
    cfg.merge_from_dict({
        'work_dir': str(tmp_path / 'work_dir'),
        'model.bbox_head.num_classes': 5,  # the dataset has 6
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.data_root': str(tmp_path / 'data'),
        'train_dataloader.dataset.num_images': 2,
    })
    for key in ('val_dataloader', 'val_evaluator', 'val_cfg',
                'test_dataloader', 'test_evaluator', 'test_cfg'):
        cfg.pop(key)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(AssertionError, match=r'`num_classes` \(5\)'):
        runner.train()
