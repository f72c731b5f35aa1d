# Copyright (c) OpenMMLab. All rights reserved.
"""tools/model_converters/rtdetr_official.py against an executed oracle.

HF transformers' ``RTDetrForObjectDetection`` runs in a cached venv of its
own (:mod:`mmriformer.testing.oracle`): random, perturbed models of every
official layout (R18vd, R34vd, R50vd, R50vd-m, R101vd) are saved there,
with their top-300 detections on one image. Here the tool converts the
saved weights, they load strictly into our baseline configs (``PResNet``
backbones, so R18vd and R34vd keep their stage-1 projection shortcut) and
must give the same detections. The oracle
also writes the weights in lyuwenyu/RT-DETR's v1 and v2 layouts, which must
convert to the same state dict.

Without the oracle venv (no package index to build it from) these tests
fail with the reason; they never skip.
"""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope
from mmengine.runner import Runner
from safetensors.torch import save_file

from mmriformer.apis import build_model, load_strict
from mmriformer.converters import rtdetr as official
from mmriformer.deployment import compare_detections
from mmriformer.testing import (logged_messages, make_det_samples,
                                official_presnet_state, randomize_)
from mmriformer.testing.oracle import OracleUnavailable, run_hf_rtdetr_oracle

ROOT = Path(__file__).parents[2]
TOOL = ROOT / 'tools/model_converters/rtdetr_official.py'
VARIANTS = ('r18vd', 'r34vd', 'r50vd', 'r50vd_m', 'r101vd')
BASIC = ('r18vd', 'r34vd')  # basic blocks; the others bottlenecks
CONFIGS = {v: ROOT / f'configs/rtdetr_{v}.py' for v in VARIANTS}
IMAGE_SIZE = (640, 640)


@pytest.fixture(scope='module')
def oracle(tmp_path_factory):
    """The oracle's folder: HF models, official .pth files, detections.

    About 2.4 GB, removed after the module's tests.
    """
    out = tmp_path_factory.mktemp('hf_rtdetr_oracle')
    try:
        run_hf_rtdetr_oracle(str(out), list(VARIANTS))
    except OracleUnavailable as error:
        pytest.fail(f'The HF transformers oracle is unavailable, so the '
                    f'conversion cannot be checked: {error}')
    yield out
    shutil.rmtree(out)


def run_tool(*args):
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT)


def build(variant):
    return build_model(CONFIGS[variant])


def predict(model, image):
    """Our detections for an HWC uint8 RGB image, through the config's
    data preprocessor (BGR in, as mmdet's pipeline gives it)."""
    model.eval()
    samples = make_det_samples([IMAGE_SIZE], [[]])
    data = {
        'inputs': [image.flip(-1).permute(2, 0, 1)],
        'data_samples': samples
    }
    with torch.no_grad():
        data = model.data_preprocessor(data, False)
        result = model.predict(data['inputs'], data['data_samples'])[0]
    return result.pred_instances.to_dict()


def assert_not_degenerate(detections):
    """Queries that are all alike would make any comparison pass."""
    boxes = detections['boxes'].round(decimals=1)
    assert len(boxes.unique(dim=0)) >= 100, 'the oracle gave alike boxes'
    assert len(detections['scores'].unique()) >= 100


@pytest.mark.slow
@pytest.mark.parametrize('variant', VARIANTS)
def test_tool_matches_hf(oracle, tmp_path, variant):
    report = json.loads((oracle / 'report.json').read_text())
    # The oracle kept the real (perturbed) stage-1 projection shortcut.
    assert report[variant]['stage1_projection']

    out = tmp_path / f'{variant}.pth'
    proc = run_tool(oracle / variant, out)
    assert proc.returncode == 0, proc.stderr
    assert f'rtdetr_{variant}.py' in proc.stdout

    model = build(variant)
    assert type(model.backbone).__name__ == 'PResNet'
    if variant == 'r50vd_m':
        # Officially R50-m predicts from decoder layer 3 (eval_idx 2); HF
        # from the last one. The weights are the same.
        assert model.decoder.eval_idx == 2
        model.decoder.eval_idx = -1
    ckpt = load_strict(model, str(out))
    assert len(ckpt['meta']['dataset_meta']['classes']) == 80
    assert ckpt['meta']['converted_from']['layout'] == 'hf'

    hf = official.load_source(str(oracle / variant))[0]
    stage = 'model.backbone.model.encoder.stages.0.layers.0.shortcut.'
    # Basic blocks: PResNet's own projection (no pool, indices 0 and 1);
    # bottleneck: ResNetV1d's, after its stride-1 pool (1 and 2).
    first = 0 if variant in BASIC else 1
    ours = ckpt['state_dict']
    assert torch.equal(ours[f'backbone.layer1.0.downsample.{first}.weight'],
                       hf[stage + 'convolution.weight'])
    for name in ('weight', 'bias', 'running_mean', 'running_var'):
        assert torch.equal(
            ours[f'backbone.layer1.0.downsample.{first + 1}.{name}'],
            hf[stage + 'normalization.' + name])

    detections = predict(model, torch.load(oracle / 'image.pt'))
    reference = torch.load(oracle / f'{variant}_detections.pt')
    assert_not_degenerate(reference)
    stats = compare_detections(detections, reference, IMAGE_SIZE)
    print(variant, stats)
    assert stats['matched'] >= 250


@pytest.mark.slow
def test_tool_explains_a_resnetv1d_config_for_r18vd(oracle, tmp_path):
    # mmdet's ResNetV1d has no stage-1 projection for basic blocks: the
    # tool must refuse and point to PResNet.
    config = tmp_path / 'rtdetr_r18vd_resnetv1d.py'
    config.write_text(f'_base_ = {str(CONFIGS["r18vd"])!r}\n'
                      f"model = dict(backbone=dict(type='ResNetV1d'))\n")
    proc = run_tool(oracle / 'r18vd', tmp_path / 'r18vd.pth', '--config',
                    config)
    assert proc.returncode != 0
    assert 'layer1.0' in proc.stderr and 'PResNet' in proc.stderr
    assert not (tmp_path / 'r18vd.pth').exists()


@pytest.mark.slow
@pytest.mark.parametrize('variant', VARIANTS)
def test_official_layouts_convert_as_hf(oracle, variant):
    hf = official.convert_state(
        official.load_source(str(oracle / variant))[0])[0]
    for version, where in (('v1', 'model'), ('v2', 'ema/module')):
        raw, config, found = official.load_source(
            str(oracle / f'{variant}_official_{version}.pth'))
        assert config is None and found == where
        state, layout = official.convert_state(raw)
        assert layout == 'official'
        assert state.keys() == hf.keys()
        assert all(torch.equal(state[k], hf[k]) for k in hf)


@pytest.mark.slow
@pytest.mark.parametrize('variant,version', [('r50vd', 'v2'), ('r18vd', 'v1')])
def test_tool_reads_official_pth(oracle, tmp_path, variant, version):
    out = tmp_path / f'{variant}.pth'
    proc = run_tool(oracle / f'{variant}_official_{version}.pth', out)
    assert proc.returncode == 0, proc.stderr
    assert f'rtdetr_{variant}.py' in proc.stdout
    ckpt = torch.load(out, weights_only=True)
    assert ckpt['meta']['converted_from']['layout'] == 'official'


@pytest.mark.slow
def test_tool_explains_a_config_that_does_not_fit(oracle, tmp_path):
    proc = run_tool(oracle / 'r50vd', tmp_path / 'out.pth', '--config',
                    CONFIGS['r18vd'])
    assert proc.returncode != 0
    # Names a key with both shapes, and the two variants.
    assert 'the weights have shape' in proc.stderr
    assert 'R50vd' in proc.stderr and 'R18vd' in proc.stderr


# -- without the oracle -------------------------------------------------


def test_read_safetensors(tmp_path):
    tensors = {'a': torch.randn(3, 4), 'b': torch.randn(2, 2).bfloat16()}
    save_file(tensors, tmp_path / 'x.safetensors')
    read = official.read_safetensors(str(tmp_path / 'x.safetensors'))
    assert read.keys() == tensors.keys()
    assert all(torch.equal(read[k], v) for k, v in tensors.items())

    (tmp_path / 'bad.safetensors').write_bytes(b'\xff' * 16)
    with pytest.raises(official.UnknownLayoutError,
                       match='bad.safetensors is not a readable'):
        official.read_safetensors(str(tmp_path / 'bad.safetensors'))


def test_denoising_table_loses_its_padding_row():
    table = torch.randn(81, 256)
    state = official.official_to_ours({
        'decoder.denoising_class_embed.weight':
        table,
        'decoder.enc_score_head.weight':
        torch.zeros(80, 256)
    })
    assert torch.equal(state['dn_query_generator.label_embedding.weight'],
                       table[:80])
    with pytest.raises(ValueError, match='79 rows for 80 classes'):
        official.official_to_ours({
            'decoder.denoising_class_embed.weight':
            table[:79],
            'decoder.enc_score_head.weight':
            torch.zeros(80, 256)
        })


def test_hf_qkv_merge_and_legacy_names():
    q, k, v = (torch.full((4, 4), float(i)) for i in range(3))
    new = official.hf_to_ours({
        'model.decoder.layers.0.self_attn.q_proj.weight':
        q,
        'model.decoder.layers.0.self_attn.k_proj.weight':
        k,
        'model.decoder.layers.0.self_attn.v_proj.weight':
        v,
        'model.decoder.layers.0.self_attn.o_proj.weight':
        q,
        'model.decoder.layers.0.mlp.fc1.weight':
        k,
    })
    legacy = official.hf_to_ours({
        'model.decoder.layers.0.self_attn.q_proj.weight':
        q,
        'model.decoder.layers.0.self_attn.k_proj.weight':
        k,
        'model.decoder.layers.0.self_attn.v_proj.weight':
        v,
        'model.decoder.layers.0.self_attn.out_proj.weight':
        q,
        'model.decoder.layers.0.fc1.weight':
        k,
    })
    assert new.keys() == legacy.keys() == {
        'decoder.layers.0.self_attn.in_proj_weight',
        'decoder.layers.0.self_attn.out_proj.weight',
        'decoder.layers.0.linear1.weight'
    }
    assert torch.equal(new['decoder.layers.0.self_attn.in_proj_weight'],
                       torch.cat([q, k, v]))
    encoder = official.hf_to_ours(
        {'model.encoder.encoder.0.layers.0.final_layer_norm.weight': q[0]})
    assert list(encoder) == ['neck.encoder.0.0.norm2.weight']


def test_unknown_layouts_are_refused(tmp_path):
    with pytest.raises(official.UnknownLayoutError, match='Unknown layout'):
        official.convert_state({'foo.weight': torch.zeros(1)})
    with pytest.raises(official.UnknownLayoutError,
                       match='no counterpart.*tgt_embed'):
        official.official_to_ours(
            {'decoder.tgt_embed.weight': torch.zeros(300, 256)})
    (tmp_path / 'folder').mkdir()
    with pytest.raises(official.UnknownLayoutError, match='config.json'):
        official.load_source(str(tmp_path / 'folder'))
    torch.save({'optimizer': {}}, tmp_path / 'x.pth')
    with pytest.raises(official.UnknownLayoutError, match='no state dict'):
        official.load_source(str(tmp_path / 'x.pth'))


@pytest.mark.parametrize('basic', [True, False])
def test_stage1_shortcut_keys(basic):
    """Stride-1 shortcuts of stage 1: PResNet's pool-less projection for
    basic blocks, ResNetV1d's (after a kernel-1 pool) for bottlenecks; the
    pooled ones of later stages are ResNetV1d's everywhere."""
    conv, norm = torch.zeros(64, 64, 1, 1), torch.zeros(64)
    stages = 'model.backbone.model.encoder.stages.'
    hf = {
        f'{stages}0.layers.0.shortcut.convolution.weight': conv,
        f'{stages}0.layers.0.shortcut.normalization.running_var': norm,
        f'{stages}1.layers.0.shortcut.1.convolution.weight': conv,
        f'{stages}1.layers.0.shortcut.1.normalization.bias': norm,
    }
    res = 'backbone.res_layers.'
    official_state = {
        f'{res}0.blocks.0.short.conv.weight': conv,
        f'{res}0.blocks.0.short.norm.running_var': norm,
        f'{res}1.blocks.0.short.conv.conv.weight': conv,
        f'{res}1.blocks.0.short.conv.norm.bias': norm,
    }
    if not basic:
        hf[f'{stages}0.layers.0.layer.2.convolution.weight'] = conv
        official_state[f'{res}0.blocks.0.branch2c.conv.weight'] = conv
    first = 0 if basic else 1
    expected = {
        f'backbone.layer1.0.downsample.{first}.weight',
        f'backbone.layer1.0.downsample.{first + 1}.running_var',
        'backbone.layer2.0.downsample.1.weight',
        'backbone.layer2.0.downsample.2.bias',
    } | ({'backbone.layer1.0.conv3.weight'} if not basic else set())
    for state in (official.hf_to_ours(hf),
                  official.official_to_ours(official_state)):
        assert set(state) - {
            k
            for k in state if k.endswith('num_batches_tracked')
        } == expected


def test_strided_plain_shortcuts_are_refused():
    # Variant 'b' (a strided 1x1 conv without pool) outside stage 1: no
    # PResNet has it, so the key must stay unknown, not load silently.
    with pytest.raises(official.UnknownLayoutError, match='no counterpart'):
        official.official_to_ours({
            'backbone.res_layers.1.blocks.0.short.conv.weight':
            torch.zeros(128, 64, 1, 1)
        })


def test_v2_points_must_be_uniform():
    with pytest.raises(ValueError, match='sampling points per level'):
        official.official_to_ours({
            'decoder.decoder.layers.0.cross_attn.num_points_scale':
            torch.tensor([1 / 2, 1 / 2, 1 / 4, 1 / 4, 1 / 4, 1 / 4])
        })


def test_hf_config_settings_are_checked():
    cfg = Config.fromfile(CONFIGS['r50vd'])
    official.check_hf_config(
        {
            'num_queries': 300,
            'backbone_config': {
                'hidden_act': 'relu'
            }
        }, cfg.model)
    with pytest.raises(ValueError, match='num_queries=100.*normalize_before'):
        official.check_hf_config({
            'num_queries': 100,
            'normalize_before': True
        }, cfg.model)


def test_tool_converts_an_official_backbone_file(tmp_path):
    """An official ImageNet PResNet file becomes ``backbone.*`` weights that
    a config loads strictly with prefix 'backbone.', equal to what PResNet
    loads from the official file itself."""
    src = tmp_path / 'ResNet18_vd_pretrained_from_paddle.pth'
    torch.save(official_presnet_state(18), src)
    out = tmp_path / 'r18vd_in1k.pth'
    proc = run_tool(src, out)
    assert proc.returncode == 0, proc.stderr
    assert 'configs/rtdetr_r18vd.py' in proc.stdout
    converted = torch.load(out, weights_only=True)
    assert converted['meta']['converted_from']['depth'] == 18
    assert all(k.startswith('backbone.') for k in converted['state_dict'])
    cfg = Config.fromfile(CONFIGS['r18vd'])
    backbones = []
    for init_cfg in (dict(checkpoint=str(out), prefix='backbone.'),
                     dict(checkpoint=str(src))):
        cfg.model.backbone.init_cfg = dict(type='Pretrained', **init_cfg)
        with DefaultScope.overwrite_default_scope('mmdet'):
            backbones.append(MODELS.build(cfg.model.backbone))
        backbones[-1].init_weights()
    for (key, a), b in zip(backbones[0].state_dict().items(),
                           backbones[1].state_dict().values()):
        assert torch.equal(a, b), key
    # Another depth than the config's: every key that does not fit named.
    r34 = tmp_path / 'ResNet34_vd_pretrained_from_paddle.pth'
    torch.save(official_presnet_state(34), r34)
    proc = run_tool(r34, tmp_path / 'x.pth', '--config', CONFIGS['r18vd'])
    assert proc.returncode != 0
    assert 'keys of rtdetr_r18vd.py are not in the weights' not in \
        proc.stderr and 'converted keys are not in rtdetr_r18vd.py' in \
        proc.stderr, proc.stderr
    assert not (tmp_path / 'x.pth').exists()
    # An existing output is replaced only with --force.
    before = out.read_bytes()
    proc = run_tool(src, out)
    assert proc.returncode != 0
    assert 'exists and is not replaced' in proc.stderr, proc.stderr
    assert out.read_bytes() == before
    assert run_tool(src, out, '--force').returncode == 0


def test_no_config_for_other_depths(tmp_path):
    variant = dict(depth=152,
                   block='bottleneck',
                   stage_blocks=(3, 8, 36, 3),
                   encoder_dims=256,
                   encoder_ffn=1024,
                   expansion=1.0,
                   decoder_layers=6,
                   decoder_dims=256,
                   num_classes=80)
    with pytest.raises(ValueError, match='No baseline config for R152vd'):
        official.pick_config(variant, str(tmp_path))


class RecordHook(Hook):
    """Keeps the model's weights as training starts (after init and
    load_from)."""

    def before_train(self, runner):
        self.state = {
            k: v.clone()
            for k, v in runner.model.state_dict().items()
        }


@pytest.mark.slow
def test_transplant_into_riformer(oracle, tmp_path, capsys):
    """configs/rtdetr_riformer_s12_from_r18vd.py on other data: the encoder
    and decoder come from the converted official R18vd, the backbone from
    an ImageNet RIFormer-S12 checkpoint; what does not fit is reported."""
    converted = tmp_path / 'rtdetr_r18vd_coco.pth'
    assert run_tool(oracle / 'r18vd', converted).returncode == 0
    official_state = torch.load(converted, weights_only=True)['state_dict']

    # An mmpretrain ImageNet checkpoint of RIFormer-S12 (random weights).
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = MODELS.build(
            dict(type='ImageClassifier',
                 backbone=dict(type='RIFormer', arch='s12'),
                 neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='LinearClsHead', num_classes=1000,
                           in_channels=512)))
    imagenet = tmp_path / 'riformer_s12_in1k.pth'
    torch.save({'state_dict': randomize_(classifier, seed=3).state_dict()},
               imagenet)

    cfg = Config.fromfile(ROOT / 'configs/rtdetr_riformer_s12_from_r18vd.py')
    demo = Config.fromfile(ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py')
    cfg.train_dataloader = demo.train_dataloader
    cfg.merge_from_dict({
        'load_from': str(converted),
        'model.backbone.init_cfg.checkpoint': str(imagenet),
        'model.bbox_head.num_classes': 6,
        'model.data_preprocessor.batch_augments': None,
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.data_root': f'{tmp_path}/data/',
        'train_dataloader.dataset.num_images': 2,
        'train_dataloader.dataset.image_size': (160, 160),
    })
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=1)
    cfg.param_scheduler = []
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = None
    cfg.work_dir = str(tmp_path / 'work_dir')
    runner = Runner.from_cfg(cfg)
    record = RecordHook()
    runner.register_hook(record, priority='LOWEST')
    with logged_messages() as messages:
        runner.train()
    loaded = record.state

    # The backbone is the ImageNet one, every key of it.
    backbone = {
        k: v
        for k, v in classifier.state_dict().items()
        if k.startswith('backbone.')
    }
    assert all(torch.equal(loaded[k], v) for k, v in backbone.items())
    # Of the rest, exactly the keys of other shapes stay initialised.
    other_shapes = {
        k
        for k, v in official_state.items()
        if k in loaded and v.shape != loaded[k].shape
    }
    assert other_shapes == {
        'neck.input_proj.1.conv.weight',
        'dn_query_generator.label_embedding.weight'
    } | {
        f'bbox_head.cls_branches.{i}.{p}'
        for i in range(4) for p in ('weight', 'bias')
    }
    transplanted = [
        k for k in loaded
        if not k.startswith('backbone.') and k not in other_shapes
    ]
    assert len(transplanted) > 300
    assert all(torch.equal(loaded[k], official_state[k]) for k in transplanted)

    # Reported, not silently ignored: mmengine names every key of another
    # shape, and the detector says what it left initial.
    printed = capsys.readouterr().out
    assert all(f'size mismatch for {k}' in printed for k in other_shapes)
    assert 'unexpected key in source state_dict: backbone.stem' in printed
    count = f'{len(other_shapes)} of other shapes'
    assert any(count in m and 'unexpected' in m for m in messages)


# lyuwenyu/RT-DETR's parameter groups for R18vd and R34vd
# (rtdetr_pytorch/configs/rtdetr/rtdetr_r18vd_6x_coco.yml): the first
# pattern that matches a name (re.findall) sets lr and weight decay.
OFFICIAL_GROUPS = (
    (r'^(?=.*backbone)(?=.*norm).*$', dict(lr=1e-5, weight_decay=0.)),
    (r'^(?=.*backbone)(?!.*norm).*$', dict(lr=1e-5, weight_decay=1e-4)),
    (r'^(?=.*(?:encoder|decoder))(?=.*(?:norm|bias)).*$',
     dict(lr=1e-4, weight_decay=0.)),
)
OFFICIAL_DEFAULT = dict(lr=1e-4, weight_decay=1e-4)


@pytest.mark.slow
def test_parameter_groups_are_official(oracle):
    """Every parameter of configs/rtdetr_r18vd.py gets the learning rate and
    weight decay that the official recipe gives it, found by its official
    name (the converter's renaming, read backwards)."""
    raw = official.load_source(str(oracle / 'r18vd_official_v1.pth'))[0]
    official_name = {new: old for new, (old, _) in
                     official.rename_official(raw).items()}
    model = build('r18vd')
    cfg = Config.fromfile(CONFIGS['r18vd'])
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    group_of = {id(p): g for g in optimizer.param_groups for p in g['params']}
    checked = 0
    for name, param in model.named_parameters():
        old = official_name[name]
        want = next((settings for pattern, settings in OFFICIAL_GROUPS
                     if re.findall(pattern, old)), OFFICIAL_DEFAULT)
        # v1's Sequential names its input projection's BN and its memory
        # LayerNorm '1', which the 'norm' pattern misses; v2 names them
        # 'norm'. Ours are norms and have no decay, as in v2.
        if re.fullmatch(r'(encoder\.input_proj|decoder\.enc_output)\.\d*'
                        r'\.?1\.weight', old):
            want = dict(want, weight_decay=0.)
        group = group_of[id(param)]
        got = dict(lr=group['lr'], weight_decay=group['weight_decay'])
        assert got == pytest.approx(want, abs=1e-12), (name, old, got, want)
        checked += 1
    assert checked == len(list(model.parameters())) > 300
