# Copyright (c) OpenMMLab. All rights reserved.
"""The environment traps named in docs/troubleshooting.md."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch.utils.data import Dataset

from mmriformer.models import RIFormer
from mmriformer.utils import transformers_problem

TINY_ARCH = dict(layers=[1, 1, 1, 1], embed_dims=[8, 16, 24, 32])


def test_transformers_problem_detection():
    versions = {'transformers': '4.57.6', 'pycocotools': '2.0.11'}

    def broken(module):
        raise TypeError('NoneType takes no arguments')

    message = transformers_problem(versions.get, broken)
    assert 'transformers 4.57.6' in message
    assert 'TypeError: NoneType takes no arguments' in message
    assert 'pip uninstall -y transformers' in message
    assert transformers_problem(versions.get, lambda module: None) is None

    def unused(module):
        raise AssertionError('imported without need')

    assert transformers_problem({'transformers': '5.2.0'}.get,
                                unused) is None
    assert transformers_problem({'pycocotools': '2.0.11'}.get,
                                unused) is None


@pytest.mark.parametrize('version', ['4.57.6', '5.2.0'])
def test_import_with_broken_transformers_fails_in_one_line(tmp_path,
                                                           version):
    """A transformers install that lacks what mmpretrain imports (here a
    metadata-only one, which lacks everything) next to pycocotools, hit
    through mmpretrain's real imports."""
    dist = tmp_path / f'transformers-{version}.dist-info'
    dist.mkdir()
    (dist / 'METADATA').write_text(
        f'Metadata-Version: 2.1\nName: transformers\nVersion: {version}\n')
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, '-c', 'import mmriformer'],
                          env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f'ImportError: mmriformer: transformers {version}')
    assert '`import mmpretrain.models` fails (' in last  # the real error
    assert 'pip uninstall -y transformers' in last
    assert 'transformers<' not in last  # no advice that does not work
    assert 'mmpretrain/models' not in proc.stderr  # nothing from deep inside


class RandomImages(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        gen = torch.Generator().manual_seed(idx)
        return dict(inputs=torch.rand(3, 32, 32, generator=gen),
                    labels=torch.tensor(idx % 2))


class TinyClassifier(BaseModel):

    def __init__(self):
        super().__init__()
        self.backbone = RIFormer(arch=TINY_ARCH)
        self.head = torch.nn.Linear(32, 2)

    def forward(self, inputs, labels, mode='tensor'):
        logits = self.head(self.backbone(inputs)[0].mean((2, 3)))
        if mode == 'loss':
            return dict(loss=torch.nn.functional.cross_entropy(logits, labels))
        return logits


def make_runner(work_dir, max_iters, **kwargs):
    return Runner(
        model=TinyClassifier(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=RandomImages(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            batch_size=2,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False)),
        default_scope='mmdet',
        **kwargs)


def test_runner_checkpoints_resume_and_load(tmp_path):
    """Checkpoints written by the Runner hold a message hub; torch>=2.6
    refuses them by default, and resume and load_from must still work."""
    make_runner(tmp_path, max_iters=2).train()
    ckpt = tmp_path / 'iter_2.pth'
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt)  # the trap is real on this torch

    runner = make_runner(tmp_path, max_iters=4, resume=True)
    runner.train()
    assert runner.iter == 4
    assert (tmp_path / 'iter_4.pth').exists()

    runner = make_runner(tmp_path / 'again', max_iters=1, load_from=str(ckpt))
    runner.train()
    saved = torch.load(ckpt, weights_only=False)['state_dict']
    assert saved['head.weight'].shape == (2, 32)


def test_mmpretrain_style_checkpoint_loads(tmp_path):
    """Checkpoints whose meta holds numpy objects load through mmengine."""
    model = RIFormer(arch=TINY_ARCH)
    path = tmp_path / 'ckpt.pth'
    torch.save(
        {
            'meta': {'best_top1': np.float64(76.9),
                     'hist': np.arange(3)},
            'state_dict': {f'backbone.{k}': v
                           for k, v in model.state_dict().items()}
        }, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    target = RIFormer(arch=TINY_ARCH, init_cfg=dict(
        type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    target.init_weights()
    for k, v in model.state_dict().items():
        assert torch.equal(target.state_dict()[k], v)
    ckpt = load_checkpoint(RIFormer(arch=TINY_ARCH), str(path),
                           revise_keys=[(r'^backbone\.', '')], strict=True)
    assert ckpt['meta']['best_top1'] == pytest.approx(76.9)
