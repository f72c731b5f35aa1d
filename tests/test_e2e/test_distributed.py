# Copyright (c) OpenMMLab. All rights reserved.
"""tools/dist_train.sh and dist_test.sh on a CPU-only host: 2 processes over
gloo train the tiny demo model and evaluate, and end with the weights of one
process trained on the same total batch; testing gives the same mAP; both
processes go back to the same best state with ReloadBestStage1Hook."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmriformer.datasets import generate_shapes_dataset

ROOT = Path(__file__).parents[2]
ITERS = 2
LR = 0.01

# Why this bound: both runs do the same arithmetic in float64 (Float64Runner)
# but for one term. Reordering sums (one batch of 4 against two of 2 whose
# gradients the all-reduce averages) moves a float64 result by ~1e-16 of its
# terms. The term: mmdet divides each loss by (avg_factor + eps32), eps32 =
# 1.2e-7 (weight_reduce_loss); each DDP rank uses the mean box count N / 2,
# so two processes divide by N + 2 * eps32 where one divides by N + eps32.
# Every gradient changes by eps32 / N <= eps32 relative, so each weight
# tensor may move by eps32 times its update; twice that (the second step
# starts from weights that differ already) plus 1e-12 for rounding bounds
# it. A DDP bug moves weights by about the update itself: gradients summed
# instead of averaged, or one rank's lost (checked below on purpose-built
# runs).
EPS32 = torch.finfo(torch.float32).eps


def bounds(single, init):
    """Per weight tensor, the largest difference the maths allows."""
    return {
        k: 2 * EPS32 * (v.double() - init[k].double()).abs().max().item() +
        1e-12
        for k, v in single.items()
    }


def worst_ratio(a, b, bound):
    """Largest |a - b| over its bound, across weight tensors."""
    assert a.keys() == b.keys() == bound.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() / bound[k]
               for k in a)


# Deterministic and free of batch statistics, so that 1 x 4 images and
# 2 x 2 images must give the same update: no random augmentation, no
# denoising noise, GN instead of BN in the encoder and the decoder input
# projection, plain SGD.
CONFIG = '''
_base_ = '{root}/configs/demo/rtdetr_riformer_s12_shapes.py'
custom_imports = dict(imports=['mmriformer', 'float64_runner'],
                      allow_failed_imports=False)
runner_type = 'Float64Runner'
data_root = '{data}/'
model = dict(
    dn_cfg=None,
    data_preprocessor=dict(type='Float64DetDataPreprocessor',
                           batch_augments=None),
    neck=dict(norm_cfg=dict(type='GN', num_groups=8)),
    decoder_input_proj=dict(norm_cfg=dict(type='GN', num_groups=8)))
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
                     optimizer=dict(type='SGD', lr={lr}, momentum=0.9))
param_scheduler = []
custom_hooks = []
default_hooks = dict(checkpoint=dict(by_epoch=False, interval={iters}))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
'''


def environment(port):
    """Our interpreter, float64_runner importable, one thread a process."""
    path = os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get('PYTHONPATH', '')])
    return dict(os.environ, MMRIFORMER_VENV=sys.prefix, PORT=str(port),
                OMP_NUM_THREADS='1', PYTHONPATH=path)


def train(config, work_dir, procs=1, batch_size=4, lr=LR):
    """Train ITERS iterations; return the final weights."""
    options = ['--work-dir', str(work_dir), '--cfg-options',
               f'train_dataloader.batch_size={batch_size}',
               f'optim_wrapper.optimizer.lr={lr}']
    if procs == 1:
        cmd = [sys.executable, ROOT / 'tools/train.py', config] + options
    else:
        cmd = ['bash', ROOT / 'tools/dist_train.sh', config, str(procs)
               ] + options
    proc = subprocess.run(cmd, env=environment(29517), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'coco/bbox_mAP' in proc.stdout + proc.stderr  # it evaluated
    # The base config asks for SyncBN, which CPU processes cannot run.
    assert ('SyncBN needs CUDA' in proc.stderr) == (procs > 1)
    state = torch.load(work_dir / f'iter_{ITERS}.pth',
                       weights_only=False)['state_dict']
    return state


@pytest.mark.slow
def test_two_cpu_processes_match_one(tmp_path):
    config = tmp_path / 'tiny.py'
    config.write_text(CONFIG.format(root=ROOT, data=tmp_path / 'data',
                                    iters=ITERS, lr=LR))
    single = train(config, tmp_path / 'single')
    assert single['backbone.network.0.0.mlp.fc1.weight'].dtype == \
        torch.float64
    ddp = train(config, tmp_path / 'ddp', procs=2, batch_size=2)
    bound = bounds(single, train(config, tmp_path / 'init', lr=0.))
    assert worst_ratio(ddp, single, bound) <= 1

    # The bound catches DDP bugs with room to spare. With SGD the update is
    # linear in the gradient, so ranks that summed their gradients instead
    # of averaging them train like one process with twice the lr; a rank
    # whose gradient is lost leaves the gradient of half the batch.
    summed = train(config, tmp_path / 'summed', lr=2 * LR)
    half = train(config, tmp_path / 'half', batch_size=2)
    assert worst_ratio(summed, single, bound) > 1e3
    assert worst_ratio(half, single, bound) > 1e3

    # dist_test.sh with 2 processes scores the checkpoint like test.py
    ckpt = tmp_path / 'single' / f'iter_{ITERS}.pth'
    maps = []
    for cmd in ([sys.executable, ROOT / 'tools/test.py', config, ckpt],
                ['bash', ROOT / 'tools/dist_test.sh', config, ckpt, '2']):
        proc = subprocess.run(
            cmd + ['--work-dir', str(tmp_path / f'test{len(maps)}')],
            env=environment(29518), capture_output=True, text=True,
            timeout=600)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-3000:]
        maps.append(re.findall(r'coco/bbox_mAP: ([0-9.]+)', output)[-1])
    assert maps[0] == maps[1]


# Appended to CONFIG: the data of write_uneven_data, in order, every image
# kept (RT-DETR trains on images without boxes too).
UNEVEN_DATA = """
data.update(synthesize=False, ann_file='annotations/train.json',
            data_prefix=dict(img='train/'),
            filter_cfg=dict(filter_empty_gt=False))
train_dataloader['sampler'] = dict(type='DefaultSampler', shuffle=False)
val_evaluator['ann_file'] = '{ann_file}'
"""


def write_uneven_data(data_root):
    """8 images: those at even indices have no box at all, those at odd
    indices have 6 to 10. With shuffle off, rank 0 of 2 gets only the empty
    ones, rank 1 only the crowded ones."""
    generate_shapes_dataset(str(data_root), 'train', 8, image_size=160,
                            seed=5, empty_ratio=0, min_objects=6,
                            max_objects=10, min_size=12, max_size=40)
    ann_file = data_root / 'annotations/train.json'
    coco = json.loads(ann_file.read_text())
    ids = sorted(image['id'] for image in coco['images'])
    empty = set(ids[::2])
    coco['annotations'] = [
        a for a in coco['annotations'] if a['image_id'] not in empty]
    ann_file.write_text(json.dumps(coco))
    return ann_file


@pytest.mark.slow
def test_rank_without_boxes_beside_a_crowded_one(tmp_path):
    """One rank's whole batch has no box while the other's has many: no
    hang, finite losses, and the single-process weights within the bound."""
    data_root = tmp_path / 'data'
    ann_file = write_uneven_data(data_root)
    config = tmp_path / 'uneven.py'
    config.write_text(
        CONFIG.format(root=ROOT, data=data_root, iters=ITERS, lr=LR) +
        UNEVEN_DATA.format(ann_file=ann_file))
    single = train(config, tmp_path / 'single')
    ddp = train(config, tmp_path / 'ddp', procs=2, batch_size=2)
    bound = bounds(single, train(config, tmp_path / 'init', lr=0.))
    assert all(torch.isfinite(v).all() for v in ddp.values()
               if v.is_floating_point())
    assert worst_ratio(ddp, single, bound) <= 1


@pytest.mark.slow
def test_denoising_under_ddp(tmp_path):
    """With denoising (random noise per rank, queries sized by each rank's
    largest box count) 2 processes train without hanging, to finite
    weights, in float32. Not compared with one process: the noise
    differs."""
    data_root = tmp_path / 'data'
    write_uneven_data(data_root)
    config = tmp_path / 'dn.py'
    config.write_text(
        CONFIG.format(root=ROOT, data=data_root, iters=ITERS, lr=LR) +
        UNEVEN_DATA.format(ann_file=data_root / 'annotations/train.json') +
        "model['dn_cfg'] = dict(label_noise_scale=0.5, box_noise_scale=1.0)\n"
        "model['data_preprocessor']['type'] = 'DetDataPreprocessor'\n"
        "runner_type = 'Runner'\n")
    ddp = train(config, tmp_path / 'ddp', procs=2, batch_size=2)
    assert all(torch.isfinite(v).all() for v in ddp.values()
               if v.is_floating_point())


RELOAD = '''
_base_ = '{tiny}'
custom_imports = dict(imports=['mmriformer', 'rank_state_hook'],
                      allow_failed_imports=False)
train_cfg = dict(max_epochs=3, val_interval=1)
custom_hooks = _base_.custom_hooks + [
    dict(type='ReloadBestStage1Hook', stop_epoch=2),
    dict(type='RankStateHook', epoch=2)
]
train_dataloader = dict(batch_size=1)
'''


@pytest.mark.slow
def test_reload_best_stage1_under_ddp(tiny, tmp_path):
    """ReloadBestStage1Hook with 2 processes: rank 0 saves, every rank
    loads, and both start the stop epoch from the same saved weights."""
    config = tmp_path / 'reload.py'
    config.write_text(RELOAD.format(tiny=tiny['config']))
    work_dir = tmp_path / 'work'
    proc = subprocess.run(
        ['bash', ROOT / 'tools/dist_train.sh', config, '2', '--work-dir',
         str(work_dir)],
        env=environment(29519), capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert 'ReloadBestStage1Hook: loaded the best state' in output
    saved = torch.load(work_dir / 'best_stage1.pth')['model']
    for rank in (0, 1):
        state = torch.load(work_dir / f'rank{rank}_epoch2.pth')
        assert state.keys() == saved.keys()
        for key, value in saved.items():
            torch.testing.assert_close(state[key], value, rtol=0, atol=0)
