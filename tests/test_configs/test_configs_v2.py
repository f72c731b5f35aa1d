# Copyright (c) OpenMMLab. All rights reserved.
"""The RT-DETRv2 configs: their recipe, the end-of-training pipeline switch,
and that each builds and trains."""
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmdet.registry import HOOKS
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmriformer.apis import build_model
from mmriformer.testing import make_det_samples

ROOT = Path(__file__).parents[2]
# config: (v1 config, epochs, stop epoch, backbone lr, sampling). From
# RT-DETRv2's configs: S (R18) 120 epochs / 1e-4, M* (R34) 120 / 5e-5,
# M (R50-m) 84 / 1e-5, L (R50) 72 / 1e-5, X (R101) 72 / 1e-6; strong
# augmentation stops at 117 of 120, 81 of 84 and 71 of 72; the discrete
# R18 fine-tunes 36 epochs, stop 33.
V2 = {
    'rtdetrv2_r18vd.py': ('rtdetr_r18vd.py', 120, 117, 1e-4, 'default'),
    'rtdetrv2_r34vd.py': ('rtdetr_r34vd.py', 120, 117, 5e-5, 'default'),
    'rtdetrv2_r50vd.py': ('rtdetr_r50vd.py', 72, 71, 1e-5, 'default'),
    'rtdetrv2_r50vd_m.py': ('rtdetr_r50vd_m.py', 84, 81, 1e-5, 'default'),
    'rtdetrv2_r101vd.py': ('rtdetr_r101vd.py', 72, 71, 1e-6, 'default'),
    'rtdetrv2_r18vd_dsp.py': ('rtdetr_r18vd.py', 36, 33, 1e-4, 'discrete'),
}
# Photometric distortion, zoom-out and IoU crop.
STRONG = {'RandomPhotometricDistort', 'Expand', 'RandomIoUCrop'}


def switch_hook(cfg):
    [hook] = [h for h in cfg.custom_hooks if h.type == 'PipelineSwitchHook']
    return hook


def test_all_v2_configs_listed():
    assert sorted(p.name for p in ROOT.glob('configs/rtdetrv2_*.py')) == \
        sorted(V2)


@pytest.mark.parametrize('config', sorted(V2))
def test_v2_recipe(config):
    _, epochs, stop_epoch, backbone_lr, method = V2[config]
    cfg = Config.fromfile(ROOT / 'configs' / config)
    assert cfg.train_cfg.max_epochs == epochs
    optim = cfg.optim_wrapper
    assert optim.optimizer.lr == 1e-4
    assert optim.optimizer.lr * optim.paramwise_cfg.custom_keys[
        'backbone'].lr_mult == pytest.approx(backbone_lr, rel=1e-12)
    assert cfg.model.decoder.layer_cfg.num_points == [4, 4, 4]
    # v2's groups exempt norms only, except M* (R34), which exempts biases
    # in the encoder and decoder too.
    paramwise = optim.paramwise_cfg
    assert paramwise.norm_decay_mult == 0
    exempt = config == 'rtdetrv2_r34vd.py'
    assert paramwise.bias_decay_mult == paramwise.flat_decay_mult == (
        0 if exempt else 1)
    assert cfg.model.decoder.layer_cfg.get('cross_attn_method',
                                           'default') == method
    assert switch_hook(cfg).switch_epoch == stop_epoch
    # Multi-scale batches stop with the strong augmentation; the official
    # R18 has none at all.
    augments = cfg.model.data_preprocessor.batch_augments
    if config.startswith('rtdetrv2_r18vd'):
        assert augments is None
    else:
        assert augments and all(a.stop_epoch == stop_epoch for a in augments)


@pytest.mark.parametrize('config', sorted(V2))
def test_v2_switch_pipeline(config):
    cfg = Config.fromfile(ROOT / 'configs' / config)
    train = cfg.train_pipeline
    switched = switch_hook(cfg).switch_pipeline
    # The training pipeline less exactly the three strong augmentations,
    # the rest in order.
    assert len(switched) == len(train) - 3
    assert not {t['type'] for t in switched} & STRONG
    assert STRONG <= {t['type'] for t in train}
    rest = iter(train)
    assert all(any(t == kept for t in rest) for kept in switched)

    hook = HOOKS.build(switch_hook(cfg))
    loader = SimpleNamespace(dataset=SimpleNamespace(pipeline='initial'))
    runner = SimpleNamespace(
        train_dataloader=loader, logger=MMLogger.get_current_instance())
    for epoch in (0, hook.switch_epoch - 1):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        assert loader.dataset.pipeline == 'initial'
    runner.epoch = hook.switch_epoch
    hook.before_train_epoch(runner)
    assert [type(t).__name__ for t in loader.dataset.pipeline.transforms
            ] == [t['type'] for t in switched]


def build(config, init=True):
    torch.manual_seed(0)
    # No pretrained backbone: no download in tests.
    model = build_model(ROOT / 'configs' / config,
                        {'model.data_preprocessor.batch_augments': None},
                        pretrained=False)
    if init:
        model.init_weights()
    return model


@pytest.mark.parametrize('config', sorted(V2))
def test_v2_model_builds_and_trains(config):
    v1_config, _, _, _, method = V2[config]
    model = build(config).train()
    # v1's parameters exactly: v1 checkpoints load into v2 models.
    v1_model = build(v1_config, init=False)
    v1_shapes = {k: v.shape for k, v in v1_model.state_dict().items()}
    assert {k: v.shape for k, v in model.state_dict().items()} == v1_shapes
    for layer in model.decoder.layers:
        assert layer.cross_attn.num_points == (4, 4, 4)
        assert layer.cross_attn.method == method

    losses = model.loss(
        torch.rand(1, 3, 128, 128),
        make_det_samples([(128, 128)], [[[8, 8, 80, 112]]]))
    assert all(torch.isfinite(v).all() for v in losses.values())
    sum(losses.values()).backward()
    offsets = model.decoder.layers[0].cross_attn.sampling_offsets.weight
    # Discrete sampling has no gradient for the offsets: they are frozen.
    assert offsets.requires_grad == (method == 'default')
    assert (offsets.grad is not None) == (method == 'default')
    assert model.decoder.layers[0].cross_attn.value_proj.weight.grad.any()

    with torch.no_grad():
        [result] = model.eval().predict(
            torch.rand(1, 3, 128, 128), make_det_samples([(128, 128)], [[]]))
    assert result.pred_instances.bboxes.shape == (300, 4)
