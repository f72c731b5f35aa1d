# Copyright (c) OpenMMLab. All rights reserved.
"""A detector run killed by SIGKILL after a checkpoint and resumed with
`tools/train.py --resume` or `mim train ... --resume` continues exactly like
the uninterrupted run: optimizer, LR schedule, EMA, counters, sampler order
and random draws (augmentation, drop path, denoising noise) all restored."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[2]
MIM = Path(sys.executable).parent / 'mim'
EPOCHS = 3

# The demo model with everything that a resume must restore: random
# augmentation (photometric distortion, flip), drop path, denoising, AdamW,
# a warm-up by iteration and a cosine by epoch, EMA, validation between
# epochs. Losses are logged every iteration, unsmoothed.
CONFIG = '''
_base_ = '{root}/configs/demo/rtdetr_riformer_s12_shapes.py'
model = dict(backbone=dict(drop_path_rate=0.1))
data = dict(data_root='{data}/', num_images=4, image_size=(160, 160))
train_dataloader = dict(batch_size=2, num_workers=0,
                        persistent_workers=False, dataset=data)
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=data)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file='{data}/annotations/val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs={epochs}, val_interval=1)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end={epochs},
         eta_min=1e-5)
]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1))
log_processor = dict(window_size=1)
randomness = dict(seed=0)
'''


def run(cmd, cwd, expect=0):
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join(
                   [str(Path(__file__).parent),
                    os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run([str(c) for c in cmd], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=900)
    assert proc.returncode == expect, (proc.stdout + proc.stderr)[-4000:]


def logged_losses(work_dir):
    """{iteration: loss} from every run logged in ``work_dir``."""
    losses = {}
    for scalars in work_dir.glob('*/vis_data/scalars.json'):
        for line in scalars.read_text().splitlines():
            record = json.loads(line)
            if 'loss' in record:
                losses[record['iter']] = record['loss']
    return losses


def final_state(work_dir):
    ckpt = torch.load(work_dir / f'epoch_{EPOCHS}.pth', weights_only=False)
    assert ckpt['meta']['epoch'] == EPOCHS
    return {
        'state_dict': ckpt['state_dict'],
        'ema': ckpt['ema_state_dict'],
        'optimizer': ckpt['optimizer']['state'],
    }


def assert_same_state(a, b):
    for part in a:
        flat_a = torch.utils._pytree.tree_leaves(a[part])
        flat_b = torch.utils._pytree.tree_leaves(b[part])
        assert len(flat_a) == len(flat_b)
        assert all(torch.equal(x, y) for x, y in zip(flat_a, flat_b)), part


@pytest.mark.slow
def test_killed_run_resumes_exactly(tmp_path):
    config = tmp_path / 'tiny.py'
    config.write_text(
        CONFIG.format(root=ROOT, data=tmp_path / 'data', epochs=EPOCHS))
    killed_config = tmp_path / 'killed.py'
    killed_config.write_text(
        "_base_ = './tiny.py'\n"
        "custom_imports = dict(imports=['mmriformer', 'sigkill_hook'],\n"
        "                      allow_failed_imports=False)\n"
        "custom_hooks = _base_.custom_hooks + [\n"
        "    dict(type='SigkillHook', after_epoch=1)]\n")
    no_reseed_config = tmp_path / 'no_reseed.py'
    no_reseed_config.write_text(
        "_base_ = './tiny.py'\n"
        "custom_hooks = [h for h in _base_.custom_hooks\n"
        "                if h['type'] != 'ReseedHook']\n")
    train = [sys.executable, ROOT / 'tools/train.py']

    run(train + [config, '--work-dir', tmp_path / 'full'], tmp_path)
    full = logged_losses(tmp_path / 'full')
    assert sorted(full) == list(range(1, 2 * EPOCHS + 1))

    killed = tmp_path / 'killed'
    run(train + [killed_config, '--work-dir', killed], tmp_path,
        expect=-signal.SIGKILL)
    assert (killed / 'epoch_1.pth').exists()
    assert not (killed / 'epoch_2.pth').exists()
    for name in ('mim', 'no_reseed'):
        shutil.copytree(killed, tmp_path / name)

    run(train + [config, '--work-dir', killed, '--resume'], tmp_path)
    run([MIM, 'train', 'mmdet', config, '--work-dir', tmp_path / 'mim',
         '--resume'], tmp_path)
    # The same operations on the same data in the same order: bit-equal.
    for name in ('killed', 'mim'):
        assert logged_losses(tmp_path / name) == full, name
        assert_same_state(final_state(tmp_path / name),
                          final_state(tmp_path / 'full'))

    # Without restoring the random draws the run takes another course, so
    # the comparison above would catch a resume that forgot them.
    run(train + [no_reseed_config, '--work-dir', tmp_path / 'no_reseed',
                 '--resume'], tmp_path)
    resumed = logged_losses(tmp_path / 'no_reseed')
    assert resumed[2] == full[2] and resumed[3] != full[3]
