# Copyright (c) OpenMMLab. All rights reserved.
from pathlib import Path

import pytest
from mmengine.config import Config

from mmriformer.apis import build_model
from mmriformer.datasets.synthetic_shapes import DEFAULT_CLASSES
from mmriformer.models import RIFormer

ROOT = Path(__file__).parents[2]


def test_mmdet_config_with_custom_imports(tmp_path):
    config = tmp_path / 'backbone.py'
    config.write_text(
        "default_scope = 'mmdet'\n"
        "custom_imports = dict(imports=['mmriformer'], "
        "allow_failed_imports=False)\n"
        "model = dict(type='RIFormer', arch='s12', out_indices=(2, 4, 6), "
        "norm_cfg=dict(type='LN2d'))\n")
    model = build_model(config)
    assert isinstance(model, RIFormer)
    assert model.out_channels == [128, 320, 512]


@pytest.mark.parametrize('config', sorted(
    (ROOT / 'configs/riformer').glob('*.py')), ids=lambda p: p.name)
def test_mmpretrain_configs_build(config):
    assert Config.fromfile(config).default_scope == 'mmpretrain'
    model = build_model(config)
    assert isinstance(model.backbone, RIFormer)
    assert model.backbone.deploy == ('deploy' in config.name)


@pytest.mark.parametrize('arch', ['s12', 's24', 's36', 'm36', 'm48'])
def test_distillation_configs(arch):
    cfg = Config.fromfile(ROOT / f'configs/riformer/riformer-{arch}_distill-'
                          f'poolformer_8xb128_in1k.py')
    model = cfg.model
    assert model.type == 'ModuleImitationClassifier'
    assert model.backbone.arch == model.teacher.backbone.arch == arch
    assert model.teacher.backbone.type == 'PoolFormer'
    assert f'poolformer-{arch}_' in model.teacher_checkpoint
    assert model.teacher.head.in_channels == model.head.in_channels
    assert cfg.train_cfg.max_epochs == 600
    assert cfg.train_dataloader.batch_size == 128


@pytest.mark.parametrize('config', sorted(
    (ROOT / 'configs').glob('**/rtdetr_riformer*.py')),
    ids=lambda p: str(p.relative_to(ROOT / 'configs')))
def test_detection_configs_use_current_names(config):
    """No deprecated key: the detector derives bbox_head.num_pred_layer, the
    neck takes mmdet's embed_dims and feedforward_channels."""
    model = Config.fromfile(config).model
    assert not {'hidden_dim', 'dim_feedforward'} & set(model.neck)
    assert {'embed_dims', 'feedforward_channels'} <= set(model.neck)
    assert 'num_pred_layer' not in model.bbox_head


@pytest.mark.parametrize(
    'config',
    sorted(p for p in (ROOT / 'configs').glob('**/rtdetr*.py')
           if '_base_' not in p.parts),
    ids=lambda p: str(p.relative_to(ROOT / 'configs')))
def test_detection_configs_follow_the_official_recipe(config):
    """SyncBN in distributed runs (mmengine's Runner converts the BNs), the
    multi-scale sizes, the decay policies also for the keyed backbone, and
    images without boxes kept."""
    cfg = Config.fromfile(config)
    assert cfg.sync_bn == 'torch'
    assert cfg.optim_wrapper.constructor == \
        'DecayPolicyOptimWrapperConstructor'
    paramwise = cfg.optim_wrapper.paramwise_cfg
    assert paramwise.norm_decay_mult == 0  # v2 decays biases (its test)
    augments = cfg.model.data_preprocessor.batch_augments
    if augments:  # the demo and RT-DETRv2-S train at one size
        assert [a.type for a in augments] == ['BatchRandomChoiceResize']
    steps = {s.type: s for s in cfg.train_dataloader.dataset.pipeline}
    assert steps['FilterAnnotations'].keep_empty is False


def test_demos_use_the_packages_shape_classes():
    """The demo configs train on the shapes the package draws by default:
    the detection demo names them, the classification demos count them."""
    det = Config.fromfile(ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py')
    for loader in (det.train_dataloader, det.val_dataloader):
        assert loader.dataset.metainfo.classes == DEFAULT_CLASSES
    assert det.model.bbox_head.num_classes == len(DEFAULT_CLASSES)
    for config in ROOT.glob('configs/demo/*_shapes_cls.py'):
        cfg = Config.fromfile(config)
        heads = [cfg.model.head] + (
            [cfg.model.teacher.head] if 'teacher' in cfg.model else [])
        assert {cfg.data_preprocessor.num_classes} | {
            head.num_classes for head in heads} == {len(DEFAULT_CLASSES)}
