# Copyright (c) OpenMMLab. All rights reserved.
"""The DEIM configs: their recipe against DEIM's official one, that each
builds and trains, and the CPU demo's stages in a real Runner."""
import math
import re
from pathlib import Path

import pytest
import torch
from helpers import (EpochStates, assert_same_tensors, differs, policy,
                     reloads)
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner
from torch import nn

from mmriformer.apis import build_model
from mmriformer.converters.rtdetr import rename_official
from mmriformer.testing import make_det_samples, official_presnet_state
from mmriformer.utils.co_detr_recipe import atss_aux_head

ROOT = Path(__file__).parents[2]
DEMO = ROOT / 'configs/demo/deim_riformer_s12_shapes.py'
RTDETR_DEMO = ROOT / 'configs/demo/rtdetr_riformer_s12_shapes.py'
# The official values: Intellindust-AI-Lab/DEIM at commit
# 09d35d53d39ee3145a1e61e3a989b28b9468d1dd, configs/deim_rtdetrv2/
# deim_{r18vd_120e,r34vd_120e,r50vd_60e,r50vd_m_60e,r101vd_60e}_coco.yml:
# epoches, flat_epoch, no_aug_epoch, the lr of the group
# '^(?=.*backbone)(?!.*norm).*$' (R18 has none: the base lr), and
# RTDETRTransformerv2.num_layers where set; policy.epoch is
# [4, flat_epoch, epoches - no_aug_epoch], mixup_epochs [4, flat_epoch] and
# collate_fn.stop_epoch epoches - no_aug_epoch in every one.
# config: (epochs, flat epoch, no-aug epochs, backbone lr, decoder layers)
DEIM = {
    'deim_rtdetrv2_r18vd_120e_coco.py': (120, 64, 3, 2e-4, 3),
    'deim_rtdetrv2_r34vd_120e_coco.py': (120, 64, 3, 1e-4, 4),
    'deim_rtdetrv2_r50vd_60e_coco.py': (60, 34, 2, 2e-5, 6),
    'deim_rtdetrv2_r50vd_m_60e_coco.py': (60, 34, 2, 2e-5, 3),
    'deim_rtdetrv2_r101vd_60e_coco.py': (60, 34, 2, 2e-6, 6),
    # Ours: S12 sized as R18 takes R18's recipe, S24 as R34 R34's.
    'deim_riformer_s12_120e_coco.py': (120, 64, 3, 2e-4, 3),
    'deim_riformer_s24_120e_coco.py': (120, 64, 3, 1e-4, 4),
}
# The same yml files: optimizer lr 0.0002, betas [0.9, 0.999], weight_decay
# 0.0001, weight_decay 0 only for '^(?=.*(?:norm|bn)).*$' (biases decayed).
# configs/base/rt_deim.yml: the Mosaic (use_cache False there: ours takes
# its images from its cache inside the policy's RandomChoice), mosaic_prob
# 0.5, mixup_prob 0.5, lr_gamma 0.5, warmup_iter 2000, the loss weights
# {loss_mal: 1, loss_bbox: 5, loss_giou: 2} and gamma 1.5 (MAL's alpha is
# not set: 1), PResNet freeze_at -1 and freeze_norm False.
# Its RTDETRTransformerv2 block: activation silu, mlp_act silu and
# query_pos_method as_reg, which engine/deim/rtdetrv2_decoder.py reads as:
# the decoder layers' FFN activation; the activation of the MLPs
# query_pos_head, enc_bbox_head and dec_bbox_head (our box branches);
# query_pos_head = MLP(4, hidden_dim, hidden_dim, 3) (else RT-DETR's
# MLP(4, 2 * hidden_dim, hidden_dim, 2)).
# configs/base/rtdetrv2_r50vd.yml: the matcher's weights {cost_class: 2,
# cost_bbox: 5, cost_giou: 2}, alpha 0.25, gamma 2.0; num_points [4, 4, 4].
# configs/runtime.yml: sync_bn True. configs/base/rt_optimizer.yml:
# total_batch_size 16, clip_max_norm 0.1, EMA decay 0.9999 with warmups
# 2000.
# The yml files' optimizer.params, the groups by regex on the official
# parameter names (R18's has only the second: its backbone is at the base
# lr, the same as the first with the base lr).
BACKBONE_GROUP = '^(?=.*backbone)(?!.*norm).*$'
NORM_GROUP = '^(?=.*(?:norm|bn)).*$'
MOSAIC = dict(type='DEIMMosaic', output_size=320, rotation_range=10,
              translation_range=(0.1, 0.1), scaling_range=(0.5, 1.5),
              probability=1.0, fill_value=0, use_cache=True,
              max_cached_images=50, random_pop=True)


def test_all_deim_configs_listed():
    # DEIM-D-FINE's (deim_hgnetv2_*) are test_configs_dfine.py's.
    assert sorted(p.name for p in ROOT.glob('configs/deim/*.py')
                  if 'hgnetv2' not in p.name) == \
        sorted(DEIM)


@pytest.mark.parametrize('config', sorted(DEIM))
def test_deim_recipe(config):
    epochs, flat, no_aug, backbone_lr, num_layers = DEIM[config]
    stop = epochs - no_aug
    cfg = Config.fromfile(ROOT / 'configs/deim' / config)
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.sync_bn == 'torch'  # sync_bn: True (configs/runtime.yml)

    optim = cfg.optim_wrapper
    assert optim.optimizer.type == 'AdamW'
    assert optim.optimizer.lr == 2e-4
    assert optim.optimizer.betas == (0.9, 0.999)
    assert optim.optimizer.weight_decay == 1e-4
    assert optim.clip_grad.max_norm == 0.1
    paramwise = optim.paramwise_cfg
    assert optim.optimizer.lr * paramwise.custom_keys['backbone'].lr_mult \
        == pytest.approx(backbone_lr, rel=1e-12)
    assert paramwise.custom_keys['backbone'].norm_lr_mult == 1
    assert paramwise.norm_decay_mult == 0
    assert paramwise.bias_decay_mult == paramwise.flat_decay_mult == 1
    assert cfg.train_dataloader.batch_size * 4 == \
        cfg.auto_scale_lr.base_batch_size == 16
    [ema] = [h for h in cfg.custom_hooks if h.type == 'EMAHook']
    assert (ema.momentum, ema.gamma) == (1e-4, 2000)

    [scheduler] = cfg.param_scheduler
    assert scheduler == dict(
        type='FlatCosineLR', warmup_iter=2000, flat_epoch=flat,
        no_aug_epoch=no_aug, lr_gamma=0.5, begin=0, end=epochs,
        convert_to_iter_based=True)

    epochs_at, stages = policy(cfg)
    assert epochs_at == [4, flat, stop]
    assert reloads(cfg) == [stop]
    [choice] = [t for t in stages[0] if t['type'] == 'RandomChoice']
    assert choice['prob'] == [0.5, 0.5]
    assert choice['transforms'][0][0] == MOSAIC
    assert cfg.model.data_preprocessor.batch_augments == [
        dict(type='DEIMBatchMixUp', prob=0.5, epochs=[4, flat]),
        dict(type='BatchRandomChoiceResize', stop_epoch=stop)
    ]

    model = cfg.model
    assert model.bbox_head.loss_cls == dict(
        type='MatchabilityAwareLoss', use_sigmoid=True, alpha=1.0,
        gamma=1.5, loss_weight=1.0)
    assert model.bbox_head.loss_bbox.loss_weight == 5
    assert model.bbox_head.loss_iou.loss_weight == 2
    # DEIMCriterion's use_uni_set, True by default and in no config.
    assert model.bbox_head.box_matching == 'union'
    costs = {c.type: c for c in model.train_cfg.assigner.match_costs}
    assert [c.weight for c in costs.values()] == [2, 5, 2]
    assert costs['FocalLossCost'].get('alpha', 0.25) == 0.25
    assert costs['FocalLossCost'].get('gamma', 2) == 2
    assert model.decoder.num_layers == num_layers
    assert model.decoder.layer_cfg.num_points == [4, 4, 4]
    assert model.decoder.eval_idx in (-1, num_layers - 1)
    assert model.decoder.layer_cfg.act_cfg == dict(type='SiLU')
    assert model.decoder.query_pos_method == 'as_reg'
    assert model.decoder.query_pos_act_cfg == dict(type='SiLU')
    assert model.bbox_head.reg_act_cfg == dict(type='SiLU')
    assert model.backbone.frozen_stages == -1
    if model.backbone.type == 'PResNet':
        assert model.backbone.norm_cfg.requires_grad
        assert not model.backbone.norm_eval


def official_names(model, backbone: dict) -> dict:
    """Our parameter names to the official ones where DEIM's regexes need
    them: the norms named 'norm' or 'bn'.

    Ours are so named but for the PResNet's stem and shortcut norms (indices
    in ``nn.Sequential``), mapped by the converter's rules from the
    official layout, and ``memory_proj.1``, the official
    ``decoder.enc_output.norm``. The RIFormers' norms are ``norm*``.
    """
    names = {name: name for name, _ in model.named_parameters()}
    if backbone.type == 'PResNet':
        state = {f'backbone.{k}': v
                 for k, v in official_presnet_state(backbone.depth).items()}
        names.update((ours, official) for ours, (official, _) in
                     rename_official(state).items() if ours in names)
    for key in ('weight', 'bias'):
        names[f'memory_proj.1.{key}'] = f'decoder.enc_output.norm.{key}'
    return names


@pytest.mark.parametrize('config', sorted(DEIM))
def test_deim_param_groups_are_the_official_regexes(config):
    """Each parameter's lr and weight decay from the built optimizer, as
    DEIM's groups give them on the official names."""
    backbone_lr = DEIM[config][3]
    cfg = Config.fromfile(ROOT / 'configs/deim' / config)
    model = build_model(cfg, pretrained=False)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    group_of = {id(p): g for g in optimizer.param_groups for p in g['params']}
    names = official_names(model, cfg.model.backbone)
    for name, param in model.named_parameters():
        official = names[name]
        in_backbone = bool(re.findall(BACKBONE_GROUP, official))
        in_norms = bool(re.findall(NORM_GROUP, official))
        # The official optimizer refuses a parameter in two groups.
        assert not (in_backbone and in_norms), official
        group = group_of[id(param)]
        assert group['lr'] == pytest.approx(
            backbone_lr if in_backbone else 2e-4, rel=1e-12), name
        assert group['weight_decay'] == (0 if in_norms else 1e-4), name


@pytest.mark.parametrize('config', sorted(DEIM))
def test_deim_model_builds_and_trains(config):
    torch.manual_seed(0)
    # No pretrained backbone: no download in tests.
    model = build_model(ROOT / 'configs/deim' / config,
                        {'model.data_preprocessor.batch_augments': None},
                        pretrained=False).train()
    model.init_weights()
    losses = model.loss(
        torch.rand(1, 3, 128, 128),
        make_det_samples([(128, 128)], [[[8, 8, 80, 112]]]))
    assert all(torch.isfinite(v).all() for v in losses.values())
    sum(losses.values()).backward()
    assert model.decoder.layers[0].cross_attn.value_proj.weight.grad.any()
    # DEIM's decoder, built.
    assert all(type(layer.activate) is nn.SiLU
               for layer in model.decoder.layers)
    assert len(model.decoder.query_pos_head.layers) == 3
    assert type(model.decoder.query_pos_head.activate) is nn.SiLU
    assert all(type(branch[1]) is nn.SiLU
               for branch in model.bbox_head.reg_branches)


def test_deim_demo_halves_the_rtdetr_demo():
    """The RT-DETR demo's model, data, seed and batch, half its iterations,
    and DEIM's schedule shrunk to its 4 epochs."""
    deim = Config.fromfile(DEMO)
    rtdetr = Config.fromfile(RTDETR_DEMO)
    for key in ('train_dataloader', 'val_dataloader'):
        deim_set, rtdetr_set = deim[key].dataset, rtdetr[key].dataset
        assert deim[key].batch_size == rtdetr[key].batch_size
        for arg in ('type', 'num_images', 'image_size', 'seed', 'metainfo'):
            assert deim_set[arg] == rtdetr_set[arg]
    assert deim.randomness == rtdetr.randomness
    assert deim.train_cfg.max_epochs * 2 == rtdetr.train_cfg.max_epochs
    [warmup, _] = rtdetr.param_scheduler
    [scheduler] = deim.param_scheduler
    assert scheduler.warmup_iter * 2 == warmup.end
    assert (scheduler.flat_epoch, scheduler.no_aug_epoch, scheduler.end) \
        == (2, 1, 4)
    assert deim.optim_wrapper.optimizer.lr == \
        2 * rtdetr.optim_wrapper.optimizer.lr
    assert policy(deim)[0] == [1, 2, 3]
    # Validated once, at the end: no best state before the last epoch.
    assert reloads(deim) == []
    assert deim.model.data_preprocessor.batch_augments == [
        dict(type='DEIMBatchMixUp', prob=0.5, epochs=[1, 2])
    ]
    model = build_model(DEMO)
    assert type(model.bbox_head.loss_cls).__name__ == \
        'MatchabilityAwareLoss'
    assert model.bbox_head.num_classes == rtdetr.model.bbox_head.num_classes
    # Co-DETR's auxiliary head on the demo's encoder maps, weighted for its
    # 3 decoder layers.
    assert deim.model.aux_head == atss_aux_head(
        num_classes=rtdetr.model.bbox_head.num_classes,
        in_channels=rtdetr.model.neck.embed_dims,
        num_decoder_layers=rtdetr.model.decoder.num_layers)
    assert model.decoder.num_layers == 3
    assert type(model.aux_head).__name__ == 'ATSSHead'


class Record(Hook):
    """The lr relative to the base lr, and the pipeline, of each iteration."""

    def __init__(self):
        self.lrs, self.pipelines = [], []

    def after_train_iter(self, runner, batch_idx, data_batch, outputs):
        # Before the schedulers step: the lr this iteration trained with.
        self.lrs.append([
            group['lr'] / group['initial_lr']
            for group in runner.optim_wrapper.param_groups
        ])
        self.pipelines.append({
            type(t).__name__
            for t in runner.train_dataloader.dataset.pipeline.transforms
        })


@pytest.mark.parametrize('reload', [False, True])
def test_deim_demo_stages_in_a_runner(tiny, tmp_path, reload):
    """The demo's recipe on the tiny model and set, 2 iterations an epoch:
    the policy's pipelines at its epochs (clean, mosaic, strong, clean) and
    FlatCosineLR's lr (warm-up of
    1 iteration, flat to epoch 2, cosine, minimum in the last epoch).

    With the COCO configs' ReloadBestStage1Hook and COCO's mAP after every
    epoch, the same pipelines and lr, and the last epoch starts from the
    model, EMA and optimizer state of the best epoch before it."""
    tiny_config = tiny['config'].read_text()
    assert repr(str(RTDETR_DEMO)) in tiny_config
    config = tmp_path / 'deim_tiny.py'
    config.write_text(
        tiny_config.replace(repr(str(RTDETR_DEMO)), repr(str(DEMO))) +
        # The auxiliary head on the tiny model's encoder width.
        "model['aux_head'] = dict(in_channels=32, feat_channels=32)\n"
        f'train_cfg = dict(max_epochs=4, val_interval={1 if reload else 10})'
        '\n'
        'param_scheduler = [dict(_base_.param_scheduler[0], '
        'warmup_iter=1)]\n')
    cfg = Config.fromfile(config)
    assert policy(cfg)[0] == [1, 2, 3]
    if reload:
        cfg.custom_hooks.append(
            dict(type='ReloadBestStage1Hook', stop_epoch=3))
    cfg.work_dir = str(tmp_path / 'work')
    record, states = Record(), EpochStates()
    runner = Runner.from_cfg(cfg)
    runner.register_hook(record)
    runner.register_hook(states)
    runner.train()

    if reload:
        maps = [m['coco/bbox_mAP'] for m in states.metrics]
        best = maps.index(max(maps[:3]))  # the first of equals
        for epoch in (1, 2):
            assert_same_tensors(states.starts[epoch], states.ends[epoch - 1])
        assert_same_tensors(states.starts[3], states.ends[best])
        if best != 2:  # the tiny model's mAP stays 0: best is epoch 0
            assert differs(states.starts[3], states.ends[2])

    # n = iteration - 1 (DEIM's shift); flat while n <= 4, minimum from
    # n = 8 - 2; the cosine between at n = 5 is halfway.
    expected = [1, 0, 1, 1, 1, 1, 0.5 + 0.5 * 0.5 * (1 + math.cos(
        math.pi / 2)), 0.5]
    assert len(record.lrs) == 8
    for lrs, want in zip(record.lrs, expected):
        assert lrs == pytest.approx([want] * len(lrs), abs=1e-12)

    mosaic, distort = 'RandomChoice', 'RandomPhotometricDistort'
    stage = [(mosaic in p, distort in p) for p in record.pipelines]
    assert stage == [(False, False)] * 2 + [(True, True)] * 2 + \
        [(False, True)] * 2 + [(False, False)] * 2
