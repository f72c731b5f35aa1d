# Copyright (c) OpenMMLab. All rights reserved.
"""The demo config's seed makes a run repeatable: two short runs of it (the
real Runner, the config's two dataloader workers, its augmentation and
denoising) log the seed of the config and the same losses at every
iteration, bit for bit; ``--cfg-options randomness.seed=N`` gives other
losses; and ``randomness.deterministic=True`` trains too (on the CPU it
changes no kernel of this model, so it logs the same losses)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

ROOT = Path(__file__).parents[2]
CONFIG = ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py'
ITERS = 20


def short_run_options(data_root):
    """One epoch of ``ITERS`` batches of the config's size, every loss
    logged unsmoothed, no validation."""
    return [
        f'train_dataloader.dataset.data_root={data_root}/',
        f'train_dataloader.dataset.num_images={ITERS * 8}',
        'train_dataloader.batch_size=8', 'train_cfg.max_epochs=1',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
        'default_hooks.logger.interval=1', 'log_processor.window_size=1'
    ]


def logged_run(work_dir, *options):
    """Train the demo config with ``options``.

    Returns:
        tuple[int, dict]: The seed the Runner logged, and every loss term
        of every iteration, ``{iteration: {name: value}}``.
    """
    cmd = [
        sys.executable, ROOT / 'tools/train.py', CONFIG, '--work-dir',
        work_dir, '--cfg-options', *short_run_options(work_dir.parent /
                                                      'data'), *options
    ]
    proc = subprocess.run([str(c) for c in cmd], capture_output=True,
                          text=True, timeout=900, cwd=work_dir.parent)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    [log] = work_dir.glob('*/*.log')
    [seed] = re.findall(r'^ +seed: (\d+)$', log.read_text(), re.MULTILINE)
    [scalars] = work_dir.glob('*/vis_data/scalars.json')
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    losses = {
        r['iter']: {k: v for k, v in r.items() if k.startswith('loss')}
        for r in records if 'loss' in r
    }
    assert sorted(losses) == list(range(1, ITERS + 1))
    return int(seed), losses


@pytest.mark.slow
def test_same_seed_same_run(tmp_path):
    shipped = Config.fromfile(CONFIG).randomness.seed
    seed, first = logged_run(tmp_path / 'first')
    assert seed == shipped
    seed, again = logged_run(tmp_path / 'again')
    assert seed == shipped
    # The same operations on the same data in the same order, with the same
    # random draws: bit-equal, not close.
    assert again == first

    seed, other = logged_run(tmp_path / 'other',
                             f'randomness.seed={shipped + 1}')
    assert seed == shipped + 1
    assert all(other[i]['loss'] != first[i]['loss'] for i in first)

    _, deterministic = logged_run(tmp_path / 'deterministic',
                                  'randomness.deterministic=True')
    assert deterministic == first
