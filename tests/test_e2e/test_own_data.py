# Copyright (c) OpenMMLab. All rights reserved.
"""The demo config trains on other COCO-format data by --cfg-options only
(the command documented in docs/training.md)."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmriformer.datasets import generate_shapes_dataset

ROOT = Path(__file__).parents[2]
CLASSES = ('hexagon', 'ellipse', 'circle')


def own_data_options(data_root, classes):
    classes = '(' + ','.join(classes) + ')'
    options = [f'model.bbox_head.num_classes={len(CLASSES)}',
               f'val_evaluator.ann_file={data_root}/annotations/val.json']
    for split, loader in (('train', 'train_dataloader'),
                          ('val', 'val_dataloader')):
        options += [
            f'{loader}.dataset.synthesize=False',
            f'{loader}.dataset.data_root={data_root}',
            f'{loader}.dataset.ann_file=annotations/{split}.json',
            f'{loader}.dataset.data_prefix.img={split}/',
            f'{loader}.dataset.metainfo.classes={classes}',
        ]
    return options


@pytest.mark.slow
def test_demo_config_trains_on_own_coco_data(tmp_path):
    data_root = tmp_path / 'my_data'
    for split, n in (('train', 8), ('val', 4)):
        generate_shapes_dataset(str(data_root), split, n, image_size=160,
                                classes=CLASSES, seed=7, max_size=80)
    work_dir = tmp_path / 'work_dir'
    cmd = [
        sys.executable, ROOT / 'tools/train.py',
        ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py', '--work-dir',
        work_dir, '--cfg-options', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1', 'train_dataloader.batch_size=4',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.persistent_workers=False'
    ] + own_data_options(data_root, CLASSES)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr
    ckpt = torch.load(work_dir / 'epoch_1.pth', weights_only=False)
    assert tuple(ckpt['meta']['dataset_meta']['classes']) == CLASSES
    head = ckpt['state_dict']['bbox_head.cls_branches.0.weight']
    assert head.shape[0] == len(CLASSES)
    # only the given data was read: the demo's data_root (relative to the
    # working directory) was not made
    assert not (tmp_path / 'data').exists()
