# Copyright (c) OpenMMLab. All rights reserved.
import copy
import subprocess
import sys
from pathlib import Path

import torch

from mmriformer.apis import build_model, load_strict
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
    proc = subprocess.run([
        sys.executable, TOOL, CONFIG, train_ckpt, deploy_ckpt,
        '--deploy-config', DEPLOY_CONFIG
    ], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'loads it strictly' in proc.stdout

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
