# Copyright (c) OpenMMLab. All rights reserved.
import copy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import digest, run

from mmriformer.apis import build_model, load_strict, reparameterize
from mmriformer.testing import assert_float32_error_within, randomize_

ROOT = Path(__file__).parents[2]
TOOL = ROOT / 'tools/model_converters/reparameterize.py'
CONFIG = ROOT / 'configs/riformer/riformer-s12_8xb128_in1k.py'
DEPLOY_CONFIG = ROOT / 'configs/riformer/riformer-s12-deploy_8xb128_in1k.py'


def build(config):
    return build_model(config).eval()


def test_reparameterize_tool(tmp_path):
    model = randomize_(build(CONFIG))
    train_ckpt, deploy_ckpt = tmp_path / 'train.pth', tmp_path / 'deploy.pth'
    torch.save({'meta': {'epoch': 300}, 'state_dict': model.state_dict()},
               train_ckpt)
    command = [
        sys.executable, TOOL, CONFIG, train_ckpt, deploy_ckpt,
        '--deploy-config', DEPLOY_CONFIG
    ]
    proc = subprocess.run(command, capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'loads it strictly' in proc.stdout
    # run again, it replaces its output only with --force
    proc = subprocess.run(command, capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: {deploy_ckpt} exists and is not replaced; give another '
        f'path, or --force to replace it.')

    deployed = build(DEPLOY_CONFIG)
    load_strict(deployed, str(deploy_ckpt))
    keys = deployed.state_dict().keys()
    assert not any('layer_scale' in k or 'token_mixer' in k for k in keys)
    images = torch.rand(2, 3, 96, 96)
    # The tool folds and the deploy model runs in float32 (oneDNN): compare
    # both float32 forms with a float64 run of the train model; the deploy
    # form's error must be like the train form's (see
    # assert_float32_error_within), while a wrong fold errs by >= 1e-3.
    with torch.no_grad():
        reference = copy.deepcopy(model).double()(images.double(),
                                                  mode='tensor')
        assert_float32_error_within(reference,
                                    deployed(images, mode='tensor'),
                                    model(images, mode='tensor'))


def test_reparameterize_tool_rejects_other_arch(tmp_path):
    ckpt = tmp_path / 's24.pth'
    s24 = str(CONFIG).replace('s12', 's24')
    torch.save({'state_dict': build(s24).state_dict()}, ckpt)
    proc = subprocess.run(
        [sys.executable, TOOL, CONFIG, ckpt, tmp_path / 'out.pth'],
        capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode != 0
    assert 'unexpected (first: backbone.' in proc.stderr
    assert not (tmp_path / 'out.pth').exists()


def test_reparameterize_never_writes_over_its_input(tiny, tmp_path):
    ckpt = tmp_path / 'train.pth'
    shutil.copy(tiny['ckpts']['good'], ckpt)
    (tmp_path / 'link.pth').symlink_to(ckpt)
    mine = tmp_path / 'mine.pth'
    mine.write_text('my notes')
    before = {p: digest(p) for p in (ckpt, mine)}
    # the command line: one line, no traceback
    proc = run(TOOL, tiny['config'], ckpt, ckpt, cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        f'error: The output {ckpt} is the input checkpoint {ckpt}; it is not '
        f'overwritten: give another output path, e.g. '
        f'{tmp_path}/train_deploy.pth.')
    for out, force, message in (
            (ckpt, True, r'is the input checkpoint'),
            (tmp_path / 'link.pth', True, r'is the input checkpoint'),
            (mine, False, r'mine\.pth exists and is not replaced; give '
             r'another path, or --force to replace it'),
            (tmp_path, True, r'is a folder; give the path of the file'),
            (tmp_path / 'new/deploy.pth', True, r'The folder .*new of '
             r'.*deploy\.pth does not exist; create it')):
        with pytest.raises(ValueError, match=message):
            reparameterize(str(tiny['config']), str(ckpt), str(out),
                           force=force)
    assert {p: digest(p) for p in (ckpt, mine)} == before
    assert not (tmp_path / 'new').exists()
    # an existing output is replaced only with force
    out = tmp_path / 'new/deploy.pth'
    out.parent.mkdir()
    reparameterize(str(tiny['config']), str(ckpt), str(out))
    with pytest.raises(ValueError, match='exists and is not replaced'):
        reparameterize(str(tiny['config']), str(ckpt), str(out))
    reparameterize(str(tiny['config']), str(ckpt), str(out), force=True)
    assert sorted(p.name for p in out.parent.iterdir()) == ['deploy.pth']
    reparameterize(str(tiny['config']), str(ckpt), str(mine), force=True)
    assert torch.load(mine, weights_only=True)['meta']['deploy']
    # missing inputs, a deploy-form input, another arch
    for args, error, message in (
            ((tmp_path / 'nope.py', ckpt), FileNotFoundError,
             r'Config .*nope\.py does not exist'),
            ((tiny['config'], tmp_path / 'nope.pth'), FileNotFoundError,
             r'Checkpoint .*nope\.pth can not be found'),
            ((tiny['config'], tiny['ckpts']['deploy']), ValueError,
             r'deploy\.pth is already in deploy form; there is nothing to '
             r'convert'),
            ((tiny['config'], tiny['ckpts']['wider']), ValueError,
             r'wider\.pth does not fit the model of the config .*tiny\.py '
             r'\(17 of other shapes \(first: ')):
        with pytest.raises(error, match=message):
            reparameterize(*map(str, args), str(tmp_path / 'x.pth'))
        assert not (tmp_path / 'x.pth').exists()
    assert not list(tmp_path.rglob('.*.tmp*'))
