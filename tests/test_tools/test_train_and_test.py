# Copyright (c) OpenMMLab. All rights reserved.
"""tools/train.py and tools/test.py on the tiny detector (tests/conftest.py):
bad input ends in one clear error before mmdet's script runs, a checkpoint
of another model is refused, and nothing a user had is lost."""
import re
import shutil
from pathlib import Path

import pytest
from helpers import digest, run

from mmriformer.utils import cli_checks

ROOT = Path(__file__).parents[2]


def test_test_tool_refuses_checkpoint_of_another_arch(tiny, tmp_path):
    """The real Runner (mmdet's test.py): it used to test random weights
    and report 'Testing finished successfully'."""
    proc = run(ROOT / 'tools/test.py', tiny['config'],
               tiny['ckpts']['wider'], '--work-dir', tmp_path / 'test',
               cwd=tmp_path)
    assert proc.returncode != 0
    assert 'ValueError: RTDETR cannot predict: weights of the checkpoint ' \
        'do not fit the model (17 of other shapes' in proc.stderr
    assert 'Epoch(test)' not in proc.stdout + proc.stderr


def test_train_and_test_tools_check_their_inputs(tiny, tmp_path,
                                                 monkeypatch):
    configs = tmp_path / 'configs'
    configs.mkdir()
    config = configs / 'tiny.py'
    shutil.copy(tiny['config'], config)
    before = digest(config)
    text = tmp_path / 'weights.pth'
    text.write_text('not weights')
    # the command lines: one line, before mmdet's script runs
    for args, message in (
            (('train.py', config, '--work-dir', configs), rf'error: The '
             rf'work_dir {configs} holds the config {config} itself, which '
             rf'the Runner would overwrite with the merged config; give '
             rf'another --work-dir\.'),
            (('test.py', config, text), rf'error: {text} is not a PyTorch '
             rf"checkpoint: it is a text file starting with 'not weights'; "
             rf'give the \.pth file that torch\.save or the Runner wrote\.')):
        proc = run(ROOT / 'tools' / args[0], *args[1:], cwd=configs)
        assert proc.returncode != 0
        assert re.fullmatch(message, proc.stderr.strip().splitlines()[-1])
    monkeypatch.chdir(configs)
    for argv, checkpoint, message in (
            ([tmp_path / 'nope.py'], False,
             r'Config .*nope\.py does not exist; check the path\.'),
            (['tiny.py', '--cfg-options', 'work_dir=.'], False,
             r'The work_dir \. holds the config tiny\.py itself'),
            ([config, '--resume', tmp_path / 'nope.pth'], False,
             r'The --resume checkpoint .*nope\.pth does not exist'),
            ([config, tmp_path / 'nope.pth'], True,
             r'Checkpoint .*nope\.pth does not exist'),
            ([config, tiny['ckpts']['good'], '--work-dir', '.'], True,
             r'holds the config .*tiny\.py itself'),
            ([config, tiny['ckpts']['good'], '--work-dir', tmp_path], True,
             None)):
        problem = cli_checks.problems(list(map(str, argv)), checkpoint)
        assert problem == message or re.search(message, problem), problem
    assert digest(config) == before
    assert sorted(p.name for p in configs.iterdir()) == ['tiny.py']


@pytest.mark.slow
def test_training_into_a_folder_with_other_files(tiny, tmp_path):
    """A work_dir holding unrelated files: training adds its own and
    deletes or changes nothing else."""
    work_dir = tmp_path / 'work_dir'
    (work_dir / 'notes').mkdir(parents=True)
    mine = {work_dir / 'notes/plan.txt': 'plan',
            work_dir / 'results.csv': '1,2,3',
            work_dir / 'other.py': 'x = 1'}
    for path, text in mine.items():
        path.write_text(text)
    proc = run(ROOT / 'tools/train.py', tiny['config'], '--work-dir',
               work_dir, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work_dir / 'epoch_1.pth').is_file()
    assert {p: p.read_text() for p in mine} == mine
