# Copyright (c) OpenMMLab. All rights reserved.
"""tools/dist_train.sh and dist_test.sh on a CPU-only host: 2 processes over
gloo train the tiny demo model and evaluate, and end with the weights of one
process trained on the same total batch; testing gives the same mAP."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[2]
ITERS = 2

# Deterministic and free of batch statistics, so that 1 x 4 images and
# 2 x 2 images must give the same update: no random augmentation, no
# denoising noise, GN instead of BN in the encoder, plain SGD.
CONFIG = '''
_base_ = '{root}/configs/demo/rtdetr_riformer_s12_shapes.py'
data_root = '{data}/'
model = dict(
    dn_cfg=None,
    data_preprocessor=dict(batch_augments=None),
    neck=dict(norm_cfg=dict(type='GN', num_groups=8)))
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(160, 160), keep_ratio=False),
    dict(type='PackDetInputs')
]
data = dict(data_root=data_root, num_images=8, image_size=(160, 160),
            pipeline=pipeline)
train_dataloader = dict(
    num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=data)
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=data)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={iters},
                 val_interval={iters})
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
param_scheduler = []
custom_hooks = []
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
'''


def train(config, work_dir, procs, batch_size):
    env = dict(os.environ, PYTHON=sys.executable, PORT='29517',
               OMP_NUM_THREADS='1')
    options = ['--work-dir', str(work_dir), '--cfg-options',
               f'train_dataloader.batch_size={batch_size}']
    if procs == 1:
        cmd = [sys.executable, ROOT / 'tools/train.py', config] + options
    else:
        cmd = ['bash', ROOT / 'tools/dist_train.sh', config, str(procs)
               ] + options
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr  # it evaluated
    return [
        torch.load(work_dir / f'iter_{i}.pth', weights_only=False)
        ['state_dict'] for i in (1, ITERS)
    ]


@pytest.mark.slow
def test_two_cpu_processes_match_one(tmp_path):
    config = tmp_path / 'tiny.py'
    config.write_text(
        CONFIG.format(root=ROOT, data=tmp_path / 'data', iters=ITERS))
    single = train(config, tmp_path / 'single', procs=1, batch_size=4)
    ddp = train(config, tmp_path / 'ddp', procs=2, batch_size=2)
    first, last = single
    assert any(not torch.equal(first[k], last[k]) for k in first)  # trained
    assert last.keys() == ddp[-1].keys()
    for name, value in last.items():
        torch.testing.assert_close(ddp[-1][name], value, rtol=1e-4,
                                   atol=1e-6, msg=name)

    # dist_test.sh with 2 processes scores the checkpoint like test.py
    ckpt = tmp_path / 'single' / f'iter_{ITERS}.pth'
    env = dict(os.environ, PYTHON=sys.executable, PORT='29518',
               OMP_NUM_THREADS='1')
    maps = []
    for cmd in ([sys.executable, ROOT / 'tools/test.py', config, ckpt],
                ['bash', ROOT / 'tools/dist_test.sh', config, ckpt, '2']):
        proc = subprocess.run(
            cmd + ['--work-dir', str(tmp_path / f'test{len(maps)}')],
            env=env, capture_output=True, text=True, timeout=600)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-3000:]
        maps.append(re.findall(r'coco/bbox_mAP: ([0-9.]+)', output)[-1])
    assert maps[0] == maps[1]
