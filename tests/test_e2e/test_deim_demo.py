# Copyright (c) OpenMMLab. All rights reserved.
"""tools/deim_demo.py as a user runs it, shrunk to 16 training images: three
``mim train mmdet`` runs, each validated after every epoch, their mAP put
on one iteration axis, and the picture."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from mmriformer.analysis.curves import validation_curve

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_deim_demo_curves(tmp_path):
    work = tmp_path / 'work'
    proc = subprocess.run(
        [
            sys.executable, ROOT / 'tools/deim_demo.py', '--work-dir', work,
            '--cfg-options', 'train_dataloader.dataset.num_images=16',
            'val_dataloader.dataset.num_images=8'
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((work / 'summary.json').read_text())
    # 16 images in batches of 8: 2 iterations per epoch; the RT-DETR demo
    # trains 8 epochs, the DEIM demo 4, with and without its auxiliary head.
    runs = (('RT-DETR', 8), ('DEIM', 4), ('DEIM-no-aux', 4))
    assert list(summary['mAP']) == [name for name, _ in runs]
    for name, epochs in runs:
        points = summary['mAP'][name]
        assert [p['iteration'] for p in points] == \
            [2 * e for e in range(1, epochs + 1)]
        logged = validation_curve(str(work / name), 'coco/bbox_mAP')
        assert [(p['epoch'], p['mAP']) for p in points] == logged
        assert summary['seconds'][name] > 0
    # The configs the runs trained with, as mim saved them.
    aux_heads = [
        Config.fromfile(work / name / 'deim_riformer_s12_shapes.py')
        .model.aux_head for name in ('DEIM', 'DEIM-no-aux')
    ]
    assert aux_heads[0].type == 'ATSSHead' and aux_heads[1] is None
    assert (work / 'curves.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_validation_curve_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='No scalars.json'):
        validation_curve(str(tmp_path), 'coco/bbox_mAP')
    log = tmp_path / 'run' / 'vis_data' / 'scalars.json'
    log.parent.mkdir(parents=True)
    log.write_text(json.dumps(dict(loss=1.0, step=1)) + '\n')
    with pytest.raises(ValueError, match='was the run validated'):
        validation_curve(str(tmp_path), 'coco/bbox_mAP')
