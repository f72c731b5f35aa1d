# Copyright (c) OpenMMLab. All rights reserved.
from pathlib import Path

import pytest
import torch
from helpers import build
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmriformer  # noqa: F401  (registers our modules)
from mmriformer.datasets import generate_shapes_dataset
from mmriformer.datasets.synthetic_shapes import DEFAULT_CLASSES as CLASSES
from mmriformer.models import switch_to_deploy

ROOT = Path(__file__).parents[1]
DEMO = ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py'

TINY_CONFIG = '''_base_ = {demo!r}
model = dict(
    num_queries=20,
    backbone=dict(arch=dict(_delete_=True, layers=[1, 1, 1, 1],
                            embed_dims=[8, 16, 24, 32])),
    neck=dict(in_channels=[16, 24, 32], embed_dims=32, num_heads=2,
              feedforward_channels=64),
    decoder=dict(num_layers=1, layer_cfg=dict(
        embed_dims=32, num_heads=2, feedforward_channels=64)),
    bbox_head=dict(embed_dims=32),
    test_cfg=dict(max_per_img=20))
data = dict(synthesize=False, data_root={data!r})
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=data)
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=data)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={data!r} + 'annotations/val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
'''


@pytest.fixture(autouse=True)
def mmdet_scope():
    """Build modules in mmdet's scope, as mmdet configs do."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


@pytest.fixture(scope='session')
def shapes_cfg(tmp_path_factory):
    """The dataset arguments of six generated 48 x 48 images of shapes."""
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes_dataset(str(root), 'train', 6, image_size=48,
                            min_size=10, max_size=24, seed=1)
    return dict(type='SyntheticShapesDataset', data_root=str(root) + '/',
                ann_file='annotations/train.json',
                data_prefix=dict(img='train/'), num_images=6, image_size=48,
                min_size=10, max_size=24, seed=1,
                filter_cfg=dict(filter_empty_gt=False))


@pytest.fixture(scope='session')
def tiny(tmp_path_factory):
    """A tiny config file (6 shape classes) on a small generated set, and
    checkpoints of it and of models that differ from it: the tiny
    RT-DETR-RIFormer of the bad-input tests (see ``helpers.py``)."""
    root = tmp_path_factory.mktemp('bad_input')
    data = root / 'data'
    for split, num in (('train', 4), ('val', 2)):
        generate_shapes_dataset(str(data), split, num, image_size=64,
                                min_size=10, max_size=30, seed=3)
    config = root / 'tiny.py'
    config.write_text(TINY_CONFIG.format(demo=str(DEMO),
                                         data=str(data) + '/'))
    cfg = Config.fromfile(config)
    meta = dict(dataset_meta=dict(classes=CLASSES))
    torch.manual_seed(0)
    ckpts = {}
    for name, overrides in (
            ('good', {}),
            ('deeper', {'backbone.arch.layers': [1, 1, 2, 1]}),
            ('wider', {'backbone.arch.embed_dims': [8, 16, 24, 40],
                       'neck.in_channels': [16, 24, 40]}),
            ('three', {'bbox_head.num_classes': 3})):
        ckpts[name] = root / f'{name}.pth'
        torch.save({'state_dict': build(cfg, **overrides).state_dict(),
                    'meta': meta}, ckpts[name])
    deploy = switch_to_deploy(build(cfg).eval())
    ckpts['deploy'] = root / 'deploy.pth'
    torch.save({'state_dict': deploy.state_dict(), 'meta': meta},
               ckpts['deploy'])
    return dict(root=root, data=data, config=config, cfg=cfg, ckpts=ckpts)
