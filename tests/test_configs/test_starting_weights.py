# Copyright (c) OpenMMLab. All rights reserved.
"""Every config's starting weights arrive complete: proof per config.

No test here can download a checkpoint, so for each config that names one
in ``model.backbone.init_cfg``, a file in that source's published layout is
written: from the source's own class where it is installed (mmpretrain's
``ResNetV1d`` and ``RIFormer`` classifiers, saved as mmpretrain saves them),
for lyuwenyu/RT-DETR's ImageNet ResNet-vd files from the state-dict
layout of the official ``PResNet`` (``official_presnet_state``), and for
D-FINE's ImageNet PP-HGNetV2 files from our ``HGNetV2``, whose keys are the
official ``HGNetv2``'s (no prefix). Every
tensor is random and distinct. The config's own init then runs from that
file (only the URL is replaced by the local path), and:

- every backbone tensor must equal exactly one tensor of the file, with the
  same role (``weight``, ``bias``, ``running_mean``, ...), and every tensor
  of the file must be used, except the keys the backbone declares as
  staying initial (a RIFormer's extra output norms) and the BatchNorm
  counters the official files do not hold;
- where the source's class is installed, the backbone must compute what
  that class computes with the file's weights.
"""
import hashlib
import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

from mmriformer.apis import build_model
from mmriformer.testing import (assert_float64_close, official_presnet_state,
                                randomize_)

ROOT = Path(__file__).parents[2]
OFFICIAL_URL = 'https://github.com/lyuwenyu/storage/releases/download/v0.1/'
DFINE_URL = 'https://github.com/Peterande/storage/releases/download/'
MMPRETRAIN_URL = 'https://download.openmmlab.com/mmclassification/'
# Configs whose backbone must start from a checkpoint (the proof below must
# find at least these).
EXPECTED = {
    'rtdetr_r18vd.py', 'rtdetr_r34vd.py', 'rtdetr_r50vd.py',
    'rtdetr_r50vd_m.py', 'rtdetr_r101vd.py', 'rtdetr_riformer_s12.py',
    'rtdetr_riformer_s24.py', 'rtdetr_riformer_s36.py',
    'rtdetr_riformer_m36.py', 'rtdetr_riformer_m48.py',
    'dfine/dfine_hgnetv2_n_coco.py', 'dfine/dfine_hgnetv2_s_coco.py',
    'dfine/dfine_hgnetv2_m_coco.py', 'dfine/dfine_hgnetv2_l_coco.py',
    'dfine/dfine_hgnetv2_x_coco.py'
}


def parsed_configs():
    """Every config under configs/ but the bases, parsed once."""
    return {
        path: Config.fromfile(path)
        for path in sorted((ROOT / 'configs').rglob('*.py'))
        if '_base_' not in path.parts
    }


CONFIGS = parsed_configs()


def pretrained_groups():
    """Configs whose backbone init names a checkpoint, grouped by backbone
    config (checkpoint included): one proof per group.

    Returns:
        list[tuple]: ``(names, checkpoint)``, the first name's config built.
    """
    groups = {}
    for path, cfg in CONFIGS.items():
        backbone = cfg.get('model', {}).get('backbone', {})
        init_cfg = backbone.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('checkpoint'):
            key = repr(sorted(backbone.to_dict().items()))
            groups.setdefault(key, ([], init_cfg['checkpoint']))[0].append(
                path.relative_to(ROOT / 'configs').as_posix())
    return list(groups.values())


GROUPS = pretrained_groups()


def test_every_pretrained_config_is_proved():
    assert EXPECTED <= {name for names, _ in GROUPS for name in names}


def test_official_layout_matches_the_published_r18_file():
    """The inventory of the published ResNet18_vd_pretrained_from_paddle.pth
    (115 tensors, 11,209,824 values) is that of the layout written here."""
    state = official_presnet_state(18)
    assert len(state) == 115
    assert sum(v.numel() for v in state.values()) == 11_209_824


def mmpretrain_classifier(backbone: dict, channels: int):
    """An mmpretrain ImageNet classifier, built by mmpretrain, as its
    checkpoints hold it (``backbone.*``, ``head.fc.*``)."""
    import mmpretrain.models  # noqa: F401  (registers mmpretrain's models)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(
            dict(type='ImageClassifier', backbone=backbone,
                 neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='LinearClsHead', num_classes=1000,
                           in_channels=channels)))


def write_source_checkpoint(checkpoint: str, backbone_cfg, path: Path):
    """Write a file in the layout of the source ``checkpoint`` names.

    Returns:
        tuple: The file's backbone state (without prefix), the prefix, and
        the source's own backbone class built with those weights and the
        config's outputs (None where the class is not installed).
    """
    name = checkpoint.rsplit('/', 1)[-1]
    if checkpoint.startswith(OFFICIAL_URL):
        state = official_presnet_state(backbone_cfg.depth)
        torch.save(state, path)
        return state, '', None
    if checkpoint.startswith(DFINE_URL):
        arch = re.match(r'PPHGNetV2_(B\d)_stage1\.pth', name)[1]
        assert arch == backbone_cfg.arch
        with DefaultScope.overwrite_default_scope('mmdet'):
            source = MODELS.build(
                dict(type='HGNetV2', arch=arch,
                     use_lab=backbone_cfg.use_lab))
        state = {k: v for k, v in randomize_(source).state_dict().items()
                 if not k.endswith('num_batches_tracked')}
        torch.save(state, path)
        return state, '', None
    if checkpoint.startswith(MMPRETRAIN_URL) and 'riformer' in name:
        arch = re.match(r'riformer-(\w+?)_', name)[1]
        assert arch == backbone_cfg.arch
        source = dict(type='RIFormer', arch=arch)
        channels = 512 if arch.startswith('s') else 768
    elif checkpoint.startswith(MMPRETRAIN_URL) and 'resnetv1d' in name:
        depth = int(re.match(r'resnetv1d(\d+)_', name)[1])
        assert depth == backbone_cfg.depth
        source = dict(type='ResNetV1d', depth=depth)
        channels = 2048
    else:
        raise AssertionError(f'No writer for the source of {checkpoint}; '
                             f'add one to prove the config.')
    classifier = randomize_(mmpretrain_classifier(source, channels))
    torch.save({'meta': {'mmpretrain_version': '1.2.0'},
                'state_dict': classifier.state_dict()}, path)
    state = {k[len('backbone.'):]: v
             for k, v in classifier.state_dict().items()
             if k.startswith('backbone.')}
    # The source class, with the detector's outputs, from the same file.
    twin = mmpretrain_classifier(
        dict(source, out_indices=tuple(backbone_cfg.out_indices)),
        channels).backbone
    twin.load_state_dict(state, strict=False)  # out norms stay initial
    return state, 'backbone.', twin


def fingerprint(tensor: torch.Tensor) -> str:
    return hashlib.sha1(tensor.detach().contiguous().numpy().tobytes() +
                        str(tuple(tensor.shape)).encode()).hexdigest()


def assert_all_from_file(backbone, file_state: dict, optional=()):
    """Every backbone tensor is one of the file's, with the same role, and
    every file tensor is used once; ``num_batches_tracked`` counters and
    the keys in ``optional`` excepted."""
    by_value = {}
    for key, value in file_state.items():
        if not key.endswith('num_batches_tracked'):
            by_value.setdefault(fingerprint(value), []).append(key)
    used, not_from_file = [], []
    for key, value in backbone.state_dict().items():
        if key.endswith('num_batches_tracked') or any(
                key.startswith(name + '.') for name in optional):
            continue
        sources = by_value.get(fingerprint(value), [])
        same_role = [k for k in sources
                     if k.rsplit('.', 1)[-1] == key.rsplit('.', 1)[-1]]
        if len(same_role) != 1:
            not_from_file.append(key)
        else:
            used.append(same_role[0])
    assert not not_from_file, (
        f'{len(not_from_file)} backbone tensors did not come from the '
        f'file: {not_from_file[:10]}')
    unused = sorted(set(k for keys in by_value.values() for k in keys) -
                    set(used))
    assert not unused, f'{len(unused)} file tensors unused: {unused[:10]}'
    assert len(used) == len(set(used))


@pytest.mark.parametrize('names,checkpoint', GROUPS,
                         ids=[','.join(names) for names, _ in GROUPS])
def test_config_starts_from_its_whole_checkpoint(names, checkpoint,
                                                 tmp_path):
    """One proof for the configs of one backbone config: the backbone's own
    init (the detector's init leaves it alone, see
    :func:`test_detector_init_keeps_the_backbone_weights`)."""
    prove(Config.fromfile(ROOT / 'configs' / names[0]), checkpoint, tmp_path)


def prove(cfg: Config, checkpoint: str, tmp_path: Path):
    """Write ``checkpoint``'s layout, run the backbone's init from it and
    check that everything came from the file (see the module doc)."""
    path = tmp_path / checkpoint.rsplit('/', 1)[-1]
    file_state, prefix, twin = write_source_checkpoint(
        checkpoint, cfg.model.backbone, path)
    cfg.model.backbone.init_cfg.checkpoint = str(path)
    assert (cfg.model.backbone.init_cfg.get('prefix') or '') == prefix
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    # RIFormer's output norms for out_indices other than the classifier's
    # last stage are not in ImageNet checkpoints: declared, and initial.
    optional = [f'norm{i}' for i in cfg.model.backbone.get('out_indices', ())
                if f'norm{i}.weight' not in file_state]
    assert_all_from_file(backbone, file_state, optional)
    if twin is not None:
        backbone.double().eval(), twin.double().eval()
        x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
        with torch.no_grad():
            assert_float64_close(twin(x), backbone(x))


@pytest.mark.parametrize('name,file', [
    ('rtdetr_r50vd.py', 'resnetv1d50_b32x8_imagenet_20210531-db14775a.pth'),
    ('rtdetr_r101vd.py', 'resnetv1d101_b32x8_imagenet_20210531-6e13bcd3.pth')
])
def test_r50_r101_take_mmpretrain_resnetv1d_whole(name, file, tmp_path):
    """The alternative to the official SSLD files: mmpretrain's ResNetV1d,
    whose stem and stage-1 shortcut keys differ from ours (23 each side)."""
    cfg = Config.fromfile(ROOT / 'configs' / name)
    checkpoint = f'{MMPRETRAIN_URL}v0/resnet/{file}'
    cfg.model.backbone.init_cfg = dict(type='Pretrained', prefix='backbone.',
                                       checkpoint=checkpoint)
    prove(cfg, checkpoint, tmp_path)


@pytest.mark.parametrize('name', ['rtdetr_r18vd.py', 'rtdetr_riformer_s12.py'])
def test_detector_init_keeps_the_backbone_weights(name, tmp_path):
    """The detector's init (the Runner's ``model.init_weights()``) runs the
    backbone's and changes none of what it loaded."""
    cfg = Config.fromfile(ROOT / 'configs' / name)
    path = tmp_path / 'backbone.pth'
    file_state, _, _ = write_source_checkpoint(
        cfg.model.backbone.init_cfg.checkpoint, cfg.model.backbone, path)
    cfg.model.backbone.init_cfg.checkpoint = str(path)
    model = build_model(cfg)
    model.init_weights()
    optional = [f'norm{i}' for i in cfg.model.backbone.get('out_indices', ())
                if f'norm{i}.weight' not in file_state]
    assert_all_from_file(model.backbone, file_state, optional)


# Configs that load_from a whole detector: the config that wrote it, and
# which file the backbone ends up from (load_from is loaded non-strictly
# after the init, as mmengine's Runner does).
LOAD_FROM = {
    # The official R18vd COCO weights, converted: the encoder and decoder
    # fit, the PResNet backbone does not and the RIFormer keeps ImageNet's.
    'rtdetr_riformer_s12_from_r18vd.py': ('rtdetr_r18vd.py', 'init_cfg'),
    # RT-DETRv2-S fine-tuned with discrete sampling from its own run.
    'rtdetrv2_r18vd_dsp.py': ('rtdetrv2_r18vd.py', 'load_from'),
}


def test_every_load_from_config_is_proved():
    found = {path.name for path, cfg in CONFIGS.items()
             if cfg.get('load_from')}
    assert found == set(LOAD_FROM)


@pytest.mark.parametrize('name', sorted(LOAD_FROM))
def test_load_from_config_ends_with_a_whole_backbone(name, tmp_path):
    from mmengine.runner import load_checkpoint
    config = ROOT / 'configs' / name
    source_config, backbone_from = LOAD_FROM[name]
    cfg = Config.fromfile(config)
    init_file = tmp_path / 'init.pth'
    init_state, _, _ = write_source_checkpoint(
        cfg.model.backbone.init_cfg.checkpoint, cfg.model.backbone,
        init_file)
    cfg.model.backbone.init_cfg.checkpoint = str(init_file)
    source = randomize_(build_model(ROOT / 'configs' / source_config),
                        seed=1)
    detector_file = tmp_path / 'detector.pth'
    torch.save({'state_dict': source.state_dict(),
                'meta': {'dataset_meta': {'classes': ['a'] * 80}}},
               detector_file)
    model = build_model(cfg)
    model.init_weights()
    load_checkpoint(model, str(detector_file), map_location='cpu',
                    strict=False, logger='silent')
    if backbone_from == 'init_cfg':
        optional = [f'norm{i}' for i in cfg.model.backbone.out_indices
                    if f'norm{i}.weight' not in init_state]
        assert_all_from_file(model.backbone, init_state, optional)
    else:
        assert_all_from_file(model.backbone, source.backbone.state_dict())
