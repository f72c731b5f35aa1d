# Copyright (c) OpenMMLab. All rights reserved.
"""The demo's command line on a CI-sized version of it: `mim train`, then
`mim test` of the EMA checkpoint reproduces the mAP training reported, and
so does the re-parameterised (deploy) checkpoint."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
CONFIG = ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py'
DEPLOY_CONFIG = ROOT / 'configs/demo/rtdetr_riformer_s12_shapes_deploy.py'
MIM = Path(sys.executable).parent / 'mim'
EPOCHS = 150  # of one 4-image batch each


def tiny_options(data_root):
    """Train and validate on the same 4 images, so it learns in minutes."""
    options = [
        f'train_cfg.max_epochs={EPOCHS}', f'train_cfg.val_interval={EPOCHS}',
        f'param_scheduler.1.end={EPOCHS}',
        f'default_hooks.checkpoint.interval={EPOCHS}',
        'default_hooks.logger.interval=50', 'train_dataloader.batch_size=4',
        f'val_evaluator.ann_file={data_root}/annotations/train.json',
        f'test_evaluator.ann_file={data_root}/annotations/train.json'
    ]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [
            f'{loader}.num_workers=0', f'{loader}.persistent_workers=False',
            f'{loader}.dataset.data_root={data_root}',
            f'{loader}.dataset.ann_file=annotations/train.json',
            f'{loader}.dataset.data_prefix.img=train/',
            f'{loader}.dataset.num_images=4', f'{loader}.dataset.seed=3'
        ]
    return options


def run(cmd, cwd):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True,
                          text=True, cwd=cwd, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def last_map(output):
    return float(re.findall(r'coco/bbox_mAP: ([0-9.]+)', output)[-1])


@pytest.mark.slow
def test_mim_train_then_test_reproduces_map(tmp_path):
    options = tiny_options(tmp_path / 'data')
    work_dir = tmp_path / 'work_dir'
    trained = last_map(
        run([MIM, 'train', 'mmdet', CONFIG, '--work-dir', work_dir,
             '--cfg-options'] + options, tmp_path))
    ckpt = work_dir / f'epoch_{EPOCHS}.pth'
    tested = last_map(
        run([MIM, 'test', 'mmdet', CONFIG, '--checkpoint', ckpt,
             '--work-dir', tmp_path / 'test', '--show-dir', 'vis',
             '--cfg-options'] + options, tmp_path))
    run([sys.executable, ROOT / 'tools/model_converters/reparameterize.py',
         CONFIG, ckpt, tmp_path / 'deploy.pth', '--deploy-config',
         DEPLOY_CONFIG], tmp_path)
    deployed = last_map(
        run([MIM, 'test', 'mmdet', DEPLOY_CONFIG, '--checkpoint',
             tmp_path / 'deploy.pth', '--work-dir', tmp_path / 'test_deploy',
             '--cfg-options'] + options, tmp_path))
    print(f'mAP: training {trained}, mim test {tested}, deploy {deployed}')
    assert trained >= 0.3
    assert tested == trained
    assert abs(deployed - tested) <= 0.001
    assert len(list((tmp_path / 'test').glob('*/vis/*.jpg'))) == 4
