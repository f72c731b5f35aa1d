# Copyright (c) OpenMMLab. All rights reserved.
"""tools/distill_demo.py as a user runs it: three ``mim train mmpretrain``
runs on the synthetic shape classes, then the comparison.

The imitating student and the plain one share arch, data, seed and steps;
the recipe must win on held-out images, and the imitating student's
checkpoint must be a plain classifier checkpoint whose deploy form gives
the same logits."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.runner import CheckpointLoader

import mmriformer  # noqa: F401  (the safe checkpoint loaders)

ROOT = Path(__file__).parents[2]
NUM_CLASSES = 6


@pytest.mark.slow
def test_module_imitation_beats_plain_training(tmp_path):
    work = tmp_path / 'work'
    proc = subprocess.run(
        [
            sys.executable, ROOT / 'tools/distill_demo.py', '--work-dir',
            work, '--data-root', tmp_path / 'data'
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(proc.stdout[-1500:])
    summary = json.loads((work / 'summary.json').read_text())
    top1 = summary['top1']
    chance = 100 / NUM_CLASSES
    # Every run validated after each epoch; the students ran equally long.
    assert len(top1['plain']) == len(top1['imitation']) == 5
    assert len(top1['teacher']) == 10
    assert top1['teacher'][-1] > 2 * chance, 'the teacher did not learn'
    assert top1['imitation'][-1] > top1['plain'][-1]
    assert (work / 'curves.png').stat().st_size > 0

    # A float64 forward of 8 blocks rounds at about 1e-16 per operation:
    # 1e-9 of the logits' size leaves room for thousands of them, while a
    # wrong fold moves logits by far more.
    deploy = summary['deploy']
    assert deploy['images'] == 64
    assert deploy['max_abs_diff'] <= 1e-9 * max(1.0, deploy['max_abs_logit'])

    last = (work / 'imitation/last_checkpoint').read_text().strip()
    state = CheckpointLoader.load_checkpoint(last, 'cpu')['state_dict']
    assert not any(k.startswith('teacher.') for k in state)
    assert any('.token_mixer.affine.' in k for k in state)


@pytest.mark.slow
def test_distillation_under_ddp(tmp_path):
    """The distillation config trains with tools/dist_train.sh, 2 processes
    over gloo on this CPU-only host."""
    from mmriformer.apis import build_model
    from mmriformer.datasets.synthetic_shapes import (
        DEFAULT_CLASSES, write_shape_classification)
    data = tmp_path / 'data'
    write_shape_classification(str(data / 'train'), 64, DEFAULT_CLASSES)
    write_shape_classification(str(data / 'val'), 32, DEFAULT_CLASSES, seed=1)
    teacher = build_model(ROOT / 'configs/demo/poolformer_tiny_shapes_cls.py')
    teacher.init_weights()
    torch.save({'state_dict': teacher.state_dict()}, tmp_path / 'teacher.pth')

    options = [
        f'model.teacher_checkpoint={tmp_path / "teacher.pth"}',
        'train_cfg.max_epochs=2'
    ]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [
            f'{loader}.dataset.data_root={data}', f'{loader}.num_workers=0',
            f'{loader}.persistent_workers=False'
        ]
    work = tmp_path / 'work'
    proc = subprocess.run(
        [
            'bash', ROOT / 'tools/dist_train.sh',
            ROOT /
            'configs/demo/riformer_tiny_distill-poolformer_shapes_cls.py',
            '2', '--work-dir', work, '--cfg-options', *options
        ],
        env=dict(os.environ, MMRIFORMER_VENV=sys.prefix, PORT='29523',
                 OMP_NUM_THREADS='1'),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    # mmengine's environment report: the world size is its 'GPU number'.
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert 'loss_imitation_out' in log and 'accuracy/top1' in log
    state = CheckpointLoader.load_checkpoint(
        str(work / 'epoch_2.pth'), 'cpu')['state_dict']
    assert not any(k.startswith('teacher.') for k in state)
    # The student started from the teacher and trained away from it.
    taught = teacher.state_dict()
    key = 'backbone.network.0.0.mlp.fc1.weight'
    assert not torch.equal(state[key], taught[key])
