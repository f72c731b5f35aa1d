# Copyright (c) OpenMMLab. All rights reserved.
"""The demo's command line, ``tools/run_demo.sh``, on a CI-sized version of
it: its ``--cfg-options`` reach every step (`mim train`, `mim test`, the
conversion into the deploy form and `mim test` of that form), `mim test` of
the EMA checkpoint reproduces the mAP training reported, and so does the
deploy checkpoint."""
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DEMO = ROOT / 'tools/run_demo.sh'
EPOCHS = 150  # of one 4-image batch each


def tiny_options(data_root):
    """Train and validate on the same 4 images, so it learns in minutes.

    The test_* settings are left to run_demo.sh, which copies the val_*
    ones (as the config's ``test_dataloader = val_dataloader``). The
    backbone is smaller than the config's, so a step that did not get the
    options would build another model: the conversion and the tests would
    refuse the checkpoint.
    """
    options = [
        f'train_cfg.max_epochs={EPOCHS}', f'train_cfg.val_interval={EPOCHS}',
        f'param_scheduler.1.end={EPOCHS}',
        f'default_hooks.checkpoint.interval={EPOCHS}',
        'default_hooks.logger.interval=50', 'train_dataloader.batch_size=4',
        f'val_evaluator.ann_file={data_root}/annotations/train.json',
        'model.backbone.arch.layers=[2,2,4,2]'
    ]
    for loader in ('train_dataloader', 'val_dataloader'):
        options += [
            f'{loader}.num_workers=0', f'{loader}.persistent_workers=False',
            f'{loader}.dataset.data_root={data_root}',
            f'{loader}.dataset.ann_file=annotations/train.json',
            f'{loader}.dataset.data_prefix.img=train/',
            f'{loader}.dataset.num_images=4', f'{loader}.dataset.seed=3'
        ]
    return options


def last_map(log):
    return float(re.findall(r'coco/bbox_mAP: ([0-9.]+)', log.read_text())[-1])


def test_refuses_options_that_not_every_step_takes(tmp_path):
    for args, message in (
            (['--amp'], r'\[demo\] error: --amp: only --cfg-options '
             r'KEY=VALUE \.\.\. is taken, since it applies to every step'),
            (['--cfg-options', 'a=1', '--work-dir', str(tmp_path)],
             r'\[demo\] error: --work-dir: set WORK_DIR=DIR instead'),
            (['--cfg-options'],
             r'\[demo\] error: --cfg-options needs KEY=VALUE pairs')):
        proc = subprocess.run(['bash', DEMO, *args], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 2
        assert re.match(message, proc.stderr)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_demo_steps_get_the_options_and_reproduce_map(tmp_path):
    work_dir = tmp_path / 'work_dir'
    proc = subprocess.run(
        ['bash', DEMO, '--cfg-options', *tiny_options(tmp_path / 'data')],
        capture_output=True, text=True, timeout=1800,
        env=dict(os.environ, WORK_DIR=str(work_dir)))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    [train_log] = work_dir.glob('[0-9]*_[0-9]*/[0-9]*_[0-9]*.log')
    trained = last_map(train_log)
    tested = last_map(work_dir / 'test.log')
    deployed = last_map(work_dir / 'test_deploy.log')
    print(f'mAP: training {trained}, mim test {tested}, deploy {deployed}')
    assert trained >= 0.3
    assert tested == trained
    assert abs(deployed - tested) <= 0.001
    # the conversion got the options: without them the checkpoint of the
    # smaller backbone would not load into the config's model
    assert (work_dir / 'deploy.pth').is_file()
    assert len(list((work_dir / 'test').glob('*/vis/*.jpg'))) == 4
    assert '[demo] pictures:    ' + str(work_dir / 'test') in output
