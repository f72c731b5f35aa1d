# Copyright (c) OpenMMLab. All rights reserved.
"""The model I/O API: models built from configs without downloads, and
checkpoints loaded strictly with one hinted error."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import CheckpointLoader

from mmriformer.apis import (WeightsMismatchError, build_model,
                             drop_pretrained, load_config, load_strict)
from mmriformer.models import switch_to_deploy
from mmriformer.testing import randomize_

ROOT = Path(__file__).parents[2]
DEMO = ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py'
URL = 'https://download.example.invalid/backbone.pth'
DEPLOY = {'model.backbone.deploy': True, 'model.neck.deploy': True}


class Read(Exception):
    """A checkpoint was read."""


@pytest.fixture
def no_reads(monkeypatch):
    """Any checkpoint read (file or download) raises :class:`Read`."""

    def read(filename, *args, **kwargs):
        raise Read(filename)

    monkeypatch.setattr(CheckpointLoader, 'load_checkpoint', read)


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    """A demo detector with random weights, saved as a checkpoint."""
    model = randomize_(build_model(DEMO), seed=3)
    path = tmp_path_factory.mktemp('model_io') / 'model.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': ['a'] * 6}}}, path)
    return model, str(path)


def save(state, path):
    torch.save({'state_dict': state}, path)
    return str(path)


def test_load_config_merges_overrides_into_a_copy(tmp_path):
    cfg = load_config(DEMO, {'model.bbox_head.num_classes': 3})
    assert cfg.model.bbox_head.num_classes == 3
    again = load_config(cfg, {'model.bbox_head.num_classes': 4})
    assert again.model.bbox_head.num_classes == 4
    assert cfg.model.bbox_head.num_classes == 3
    with pytest.raises(FileNotFoundError, match=r'Config .*nope\.py does '
                       r'not exist; check the path'):
        load_config(tmp_path / 'nope.py')


def test_drop_pretrained_keeps_other_inits():
    cfg = dict(
        backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=URL)),
        neck=dict(init_cfg=[dict(type='Pretrained', checkpoint=URL),
                            dict(type='Constant', val=1, layer='Conv2d')]),
        heads=[dict(init_cfg=[dict(type='Pretrained', checkpoint=URL)])],
        decoder=dict(init_cfg=dict(type='Xavier', layer='Linear')))
    drop_pretrained(cfg)
    assert cfg == dict(
        backbone=dict(init_cfg=None),
        neck=dict(init_cfg=[dict(type='Constant', val=1, layer='Conv2d')]),
        heads=[dict(init_cfg=None)],
        decoder=dict(init_cfg=dict(type='Xavier', layer='Linear')))


def test_build_without_pretrained_downloads_nothing(no_reads):
    # The demo starts from scratch (init_cfg=None); give it a download.
    cfg = load_config(DEMO)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=URL,
                                       prefix='backbone.')
    # Building never reads weights; init_weights runs the Pretrained init.
    model = build_model(cfg)
    assert model.backbone.init_cfg['checkpoint'] == URL
    with pytest.raises(Read, match='download.example.invalid'):
        model.init_weights()
    model = build_model(cfg, pretrained=False)
    assert model.backbone.init_cfg is None
    model.init_weights()
    # The config's scope (mmpretrain) and its own init_cfg list stay.
    classifier = build_model(
        ROOT / 'configs/riformer/riformer-s12_8xb128_in1k.py',
        pretrained=False)
    assert classifier.backbone.init_cfg[0]['type'] == 'TruncNormal'


def test_strict_load(saved, tmp_path):
    model, path = saved
    fresh = build_model(DEMO)
    ckpt = load_strict(fresh, path, DEMO)
    assert ckpt['meta']['dataset_meta']['classes'] == ['a'] * 6
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    # A DataParallel's keys, and BatchNorms without counters, load too.
    state = {f'module.{k}': v for k, v in model.state_dict().items()
             if 'num_batches_tracked' not in k}
    load_strict(build_model(DEMO), save(state, tmp_path / 'dp.pth'))
    # An already read checkpoint is not read again.
    load_strict(build_model(DEMO), 'in memory', ckpt={'state_dict': state})


def test_other_shapes_name_the_keys_and_the_classes(saved, tmp_path):
    three = build_model(DEMO, {'model.bbox_head.num_classes': 3})
    path = save(three.state_dict(), tmp_path / 'three.pth')
    model = build_model(DEMO)
    with pytest.raises(WeightsMismatchError, match=(
            r'^The checkpoint .*three\.pth does not fit the model of the '
            r'config .*rtdetr_riformer_s12_shapes\.py \(\d+ of other shapes '
            r'\(first: \S+: \(3, 128\) in the checkpoint, \(6, 128\) in the '
            r'model\)\); use the config the checkpoint was trained with '
            r'\(it predicts 3 classes: set model\.bbox_head\.num_classes=3'
            r'\)\.$')) as error:
        load_strict(model, path, DEMO)
    assert isinstance(error.value, ValueError)
    assert 'of other shapes (first: ' in error.value.problems
    assert f'({error.value.problems}); ' in str(error.value)


def test_missing_and_unexpected_keys_are_named(saved, tmp_path):
    model, _ = saved
    state = dict(model.state_dict())
    removed = [k for k in state if k.startswith('decoder.')][:4]
    for key in removed:
        del state[key]
    state['bbox_head.extra.weight'] = torch.zeros(1)
    with pytest.raises(WeightsMismatchError, match=(
            rf'does not fit the model RTDETR \(4 missing \(first: '
            rf'{removed[0]}, {removed[1]}, {removed[2]}\); 1 unexpected '
            rf'\(first: bbox_head\.extra\.weight\)\); use the config the '
            rf'checkpoint was trained with \(the Runner saves a copy in its '
            rf'work_dir\)\.$')):
        load_strict(build_model(DEMO), save(state, tmp_path / 'x.pth'))


def test_deploy_weights_in_the_train_form(saved, tmp_path):
    model, _ = saved
    deployed = switch_to_deploy(build_model(DEMO).eval())
    path = save(deployed.state_dict(), tmp_path / 'deploy.pth')
    with pytest.raises(WeightsMismatchError, match=(
            r'deploy\.pth does not fit the model of the config .*: The '
            r'checkpoint is in deploy form .*use the deploy config')):
        load_strict(build_model(DEMO), path, DEMO)
    # The deploy form takes them.
    load_strict(build_model(DEMO, DEPLOY), path)


def test_train_weights_in_the_deploy_form(saved):
    _, path = saved
    with pytest.raises(WeightsMismatchError, match=(
            r'\d+ missing \(first: neck\..*\d+ unexpected \(first: neck\..*; '
            r'train-form weights for a deploy-form model\); use the '
            r'train-form config of the checkpoint and fold the model after '
            r'loading \(tools/infer\.py --deploy\), or convert it to the '
            r'deploy form first with tools/model_converters/'
            r'reparameterize\.py\.')):
        load_strict(build_model(DEMO, DEPLOY), path, Config.fromfile(DEMO))
