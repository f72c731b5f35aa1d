# Copyright (c) OpenMMLab. All rights reserved.
"""The demo model set up to overfit four generated images with the real
Runner: 160 x 160, 300 iterations, no augmentation, evaluated on the same
images (about a minute on 2 cores)."""
from pathlib import Path

from mmengine.config import Config

ROOT = Path(__file__).parents[2]
SIZE = 160
ITERS = 300


def overfit_config(tmp_path: Path, optim_wrapper: str = 'OptimWrapper'
                   ) -> Config:
    """The config; data and work_dir go below ``tmp_path``. It has no test
    loop: its val set is the training set."""
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

    return cfg
