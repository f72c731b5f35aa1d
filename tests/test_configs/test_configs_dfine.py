# Copyright (c) OpenMMLab. All rights reserved.
"""The D-FINE and DEIM-D-FINE configs: their recipes against the official
ones, the optimizer's groups against the official regexes, the parameter
counts against the official models', and that they build and train."""
import re
from pathlib import Path

import pytest
import torch
from helpers import policy, reloads
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from torch import nn

from mmriformer.apis import build_model
from mmriformer.models.data_preprocessors import RTDETR_SCALES
from mmriformer.testing import make_det_samples
from mmriformer.utils.dfine_recipe import multi_scales

ROOT = Path(__file__).parents[2]
URL = ('https://github.com/Peterande/storage/releases/download/dfinev1.0/'
       'PPHGNetV2_{}_stage1.pth')
# The official values: Peterande/D-FINE at commit
# 4a1f73a8bcfac736a88abde9596d87f116d780a7, configs/dfine/
# dfine_hgnetv2_{n,s,m,l,x}_coco.yml over include/{dfine_hgnetv2,optimizer,
# dataloader}.yml: HGNetv2 name, use_lab, return_idx and freezing;
# HybridEncoder in_channels, hidden_dim, dim_feedforward, use_encoder_idx,
# expansion, depth_mult; DFINETransformer num_layers, num_points, reg_scale;
# optimizer lr, weight_decay and the backbone group's lr; epochs,
# collate_fn.stop_epoch (= policy.epoch), base_size_repeat and
# total_batch_size.
# size: (arch, use_lab, out_indices, frozen, in_channels, embed_dims,
#        feedforward, encoder_idx, expansion, depth_mult, layers, points,
#        reg_scale, lr, backbone lr, weight decay, encoder/decoder biases
#        decayed, epochs, stop epoch, base_size_repeat, total batch)
DFINE = {
    'n': ('B0', True, (2, 3), False, [512, 1024], 128, 512, [1], 0.34, 0.5,
          3, [6, 6], 4, 8e-4, 4e-4, 1e-4, False, 160, 148, None, 128),
    's': ('B0', True, (1, 2, 3), False, [256, 512, 1024], 256, 1024, [2],
          0.5, 0.34, 3, [3, 6, 3], 4, 2e-4, 1e-4, 1e-4, False, 132, 120, 20,
          32),
    'm': ('B2', True, (1, 2, 3), False, [384, 768, 1536], 256, 1024, [2],
          1.0, 0.67, 4, [3, 6, 3], 4, 2e-4, 2e-5, 1e-4, False, 132, 120, 6,
          32),
    'l': ('B4', False, (1, 2, 3), True, [512, 1024, 2048], 256, 1024, [2],
          1.0, 1.0, 6, [3, 6, 3], 4, 2.5e-4, 1.25e-5, 1.25e-4, True, 80, 72,
          4, 32),
    'x': ('B5', False, (1, 2, 3), True, [512, 1024, 2048], 384, 2048, [2],
          1.0, 1.0, 6, [3, 6, 3], 8, 2.5e-4, 2.5e-6, 1.25e-4, True, 80, 72,
          3, 32),
}
# Intellindust-AI-Lab/DEIM at commit
# 09d35d53d39ee3145a1e61e3a989b28b9468d1dd, configs/deim_dfine/
# deim_hgnetv2_{n,s,m,l,x}_coco.yml over configs/base/deim.yml and their
# dfine_hgnetv2_*_coco.yml (D-FINE's above): epoches, flat_epoch (N's 7800
# with lr_gamma 1.0 is a constant lr: ours is the policy's 78),
# no_aug_epoch, lr_gamma, optimizer lr and the backbone group's lr.
# size: (epochs, flat epoch, no-aug epochs, lr gamma, lr, backbone lr)
DEIM = {
    'n': (160, 78, 12, 1.0, 8e-4, 4e-4),
    's': (132, 64, 12, 0.5, 4e-4, 2e-4),
    'm': (102, 49, 12, 0.5, 4e-4, 4e-5),
    'l': (58, 29, 8, 0.5, 5e-4, 2.5e-5),
    'x': (58, 29, 8, 0.5, 5e-4, 5e-6),
}
# The yml files' optimizer.params: (regex, lr is the backbone's, weight
# decay 0), the parameters of no group at the base lr and weight decay.
DFINE_SMALL_GROUPS = [
    ('^(?=.*backbone)(?!.*norm|bn).*$', True, False),
    ('^(?=.*backbone)(?=.*norm|bn).*$', True, True),
    ('^(?=.*(?:encoder|decoder))(?=.*(?:norm|bn|bias)).*$', False, True),
]
DFINE_LARGE_GROUPS = [
    ('^(?=.*backbone)(?!.*norm|bn).*$', True, False),
    ('^(?=.*(?:encoder|decoder))(?=.*(?:norm|bn)).*$', False, True),
]
DEIM_S_M_GROUPS = [
    ('^(?=.*backbone)(?!.*bn).*$', True, False),
    ('^(?=.*(?:norm|bn)).*$', False, True),
]
GROUPS = {
    'dfine': dict(n=DFINE_SMALL_GROUPS, s=DFINE_SMALL_GROUPS,
                  m=DFINE_SMALL_GROUPS, l=DFINE_LARGE_GROUPS,
                  x=DFINE_LARGE_GROUPS),
    'deim': dict(n=DFINE_SMALL_GROUPS, s=DEIM_S_M_GROUPS, m=DEIM_S_M_GROUPS,
                 l=DFINE_LARGE_GROUPS, x=DFINE_LARGE_GROUPS),
}
# Parameters of the official models (their HGNetv2, HybridEncoder and
# DFINETransformer built from the yml files above, counted with
# sum(p.numel() for p in model.parameters())): the frozen BatchNorms of L
# and X are FrozenBatchNorm2d buffers there, and `up` and `reg_scale`
# frozen parameters (buffers here). The README rounds them: 4M, 10M, 19M,
# 31M, 62M.
OFFICIAL_PARAMS = dict(n=3782693, s=10321877, m=19590064, l=31244152,
                       x=62621560)
README_PARAMS = dict(n=4, s=10, m=19, l=31, x=62)


def dfine_config(size):
    return ROOT / f'configs/dfine/dfine_hgnetv2_{size}_coco.py'


def deim_config(size):
    return ROOT / f'configs/deim/deim_hgnetv2_{size}_coco.py'


def test_all_dfine_configs_listed():
    assert sorted(p.name for p in ROOT.glob('configs/dfine/*.py')) == sorted(
        [dfine_config(s).name for s in DFINE] +
        ['dfine_riformer_s12_132e_coco.py', 'dfine_riformer_s24_132e_coco.py'])
    assert sorted(ROOT.glob('configs/deim/deim_hgnetv2_*.py')) == sorted(
        deim_config(s) for s in DEIM)


def test_multi_scales():
    """D-FINE's generate_scales: RT-DETR's 13 sizes at 3 repeats."""
    assert tuple(multi_scales(3)) == RTDETR_SCALES
    assert multi_scales(20) == [480, 512, 544, 576, 608] + [640] * 20 + [
        672, 704, 736, 768, 800]
    with pytest.raises(ValueError, match='base_size_repeat'):
        multi_scales(0)


@pytest.mark.parametrize('size', sorted(DFINE))
def test_dfine_recipe(size):
    (arch, use_lab, out_indices, frozen, in_channels, embed_dims, ffn,
     encoder_idx, expansion, depth_mult, layers, points, reg_scale, lr,
     backbone_lr, wd, decay_biases, epochs, stop, repeat,
     batch) = DFINE[size]
    cfg = Config.fromfile(dfine_config(size))
    model = cfg.model
    assert model.type == 'DFINE'
    assert model.num_queries == 300
    assert model.data_preprocessor.mean == [0, 0, 0]
    assert model.data_preprocessor.std == [255, 255, 255]
    backbone = model.backbone
    assert (backbone.type, backbone.arch, backbone.use_lab,
            tuple(backbone.out_indices)) == ('HGNetV2', arch, use_lab,
                                             out_indices)
    # L and X: freeze_at 0, freeze_stem_only, freeze_norm.
    assert backbone.frozen_stages == (0 if frozen else -1)
    assert backbone.norm_eval == frozen
    assert backbone.norm_cfg.requires_grad == (not frozen)
    assert backbone.init_cfg == dict(type='Pretrained',
                                     checkpoint=URL.format(arch))
    neck = model.neck
    assert neck.type == 'DFineHybridEncoder'
    assert (neck.in_channels, neck.embed_dims, neck.feedforward_channels,
            neck.use_encoder_idx, neck.expansion, neck.depth_mult) == (
                in_channels, embed_dims, ffn, encoder_idx, expansion,
                depth_mult)
    assert neck.feat_strides == [8, 16, 32][-len(in_channels):]
    assert (neck.num_heads, neck.num_encoder_layers) == (8, 1)
    decoder = model.decoder
    decoder_dims = 128 if size == 'n' else 256
    assert (decoder.num_layers, decoder.eval_idx, decoder.reg_max,
            decoder.reg_scale) == (layers, -1, 32, reg_scale)
    assert decoder.layer_cfg == dict(
        embed_dims=decoder_dims, num_heads=8,
        feedforward_channels=4 * decoder_dims, num_levels=len(points),
        num_points=points)
    assert model.decoder_input_proj == dict(same_width_identity=True)
    head = model.bbox_head
    assert (head.type, head.embed_dims, head.reg_max,
            head.num_classes) == ('DFineHead', decoder_dims, 32, 80)
    # DFINECriterion: VFL (alpha 0.75, gamma 2) 1, L1 5, GIoU 2, FGL 0.15,
    # DDF 1.5; the matcher's costs 2, 5, 2 with alpha 0.25, gamma 2.
    assert head.loss_cls == dict(type='RTDETRVarifocalLoss', use_sigmoid=True,
                                 alpha=0.75, gamma=2.0, loss_weight=1.0)
    assert (head.loss_bbox.loss_weight, head.loss_iou.loss_weight,
            head.loss_fgl.loss_weight,
            head.loss_ddf.loss_weight) == (5, 2, 0.15, 1.5)
    assert [c.weight for c in model.train_cfg.assigner.match_costs] == \
        [2, 5, 2]
    assert model.dn_cfg == dict(
        label_noise_scale=0.5, box_noise_scale=1.0,
        group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=100))
    assert model.test_cfg.max_per_img == 300

    optim = cfg.optim_wrapper
    assert (optim.optimizer.type, optim.optimizer.lr, optim.optimizer.betas,
            optim.optimizer.weight_decay) == ('AdamW', lr, (0.9, 0.999), wd)
    assert optim.clip_grad.max_norm == 0.1
    paramwise = optim.paramwise_cfg
    assert lr * paramwise.custom_keys['backbone'].lr_mult == \
        pytest.approx(backbone_lr, rel=1e-12)
    assert paramwise.bias_decay_mult == paramwise.flat_decay_mult == (
        1 if decay_biases else 0)
    # LinearWarmup over 500 iterations; EMA 0.9999 with warmups 1000.
    assert cfg.param_scheduler == [
        dict(type='LinearLR', start_factor=1 / 500, by_epoch=False, begin=0,
             end=500)
    ]
    [ema] = [h for h in cfg.custom_hooks if h.type == 'EMAHook']
    assert (ema.momentum, ema.gamma) == (1e-4, 1000)

    assert cfg.train_cfg.max_epochs == epochs
    switch_epochs, [switch_pipeline] = policy(cfg)
    assert switch_epochs == [stop]
    assert reloads(cfg) == [stop]
    assert not {'RandomPhotometricDistort', 'Expand', 'RandomIoUCrop'} & {
        t.type for t in switch_pipeline}
    augments = model.data_preprocessor.batch_augments
    if repeat is None:
        assert augments is None
    else:
        assert augments == [
            dict(type='BatchRandomChoiceResize',
                 scales=multi_scales(repeat), stop_epoch=stop)
        ]
    assert cfg.train_dataloader.batch_size * 8 == \
        cfg.auto_scale_lr.base_batch_size == batch
    assert cfg.sync_bn == 'torch'
    steps = {s.type: s for s in cfg.train_dataloader.dataset.pipeline}
    assert steps['Resize'].scale == (640, 640)
    assert steps['RandomIoUCrop'].prob == 0.8
    assert steps['FilterAnnotations'].keep_empty is False
    assert cfg.val_dataloader.dataset.pipeline[1].scale == (640, 640)


@pytest.mark.parametrize('size', sorted(DEIM))
def test_deim_dfine_recipe(size):
    epochs, flat, no_aug, lr_gamma, lr, backbone_lr = DEIM[size]
    stop = epochs - no_aug
    repeat = DFINE[size][19]
    cfg = Config.fromfile(deim_config(size))
    base = Config.fromfile(dfine_config(size))
    assert cfg.train_cfg.max_epochs == epochs
    optim = cfg.optim_wrapper
    assert optim.optimizer.lr == lr
    assert optim.optimizer.weight_decay == base.optim_wrapper.optimizer.\
        weight_decay
    assert lr * optim.paramwise_cfg.custom_keys['backbone'].lr_mult == \
        pytest.approx(backbone_lr, rel=1e-12)
    [scheduler] = cfg.param_scheduler
    assert scheduler == dict(
        type='FlatCosineLR', warmup_iter=2000, flat_epoch=flat,
        no_aug_epoch=no_aug, lr_gamma=lr_gamma, begin=0, end=epochs,
        convert_to_iter_based=True)
    assert policy(cfg)[0] == [4, flat, stop]
    assert reloads(cfg) == [stop]
    resize = [] if repeat is None else [
        dict(type='BatchRandomChoiceResize', scales=multi_scales(repeat),
             stop_epoch=stop)
    ]
    assert cfg.model.data_preprocessor.batch_augments == [
        dict(type='DEIMBatchMixUp', prob=0.5, epochs=[4, flat])
    ] + resize
    model = cfg.model
    # deim.yml: MAL (gamma 1.5) 1 with D-FINE's other weights; silu as
    # activation and mlp_act; HGNetv2 freeze_at -1, freeze_norm False.
    assert model.bbox_head.loss_cls.type == 'MatchabilityAwareLoss'
    assert model.bbox_head.loss_cls.gamma == 1.5
    assert model.bbox_head.loss_fgl == base.model.bbox_head.loss_fgl
    assert model.bbox_head.loss_ddf == base.model.bbox_head.loss_ddf
    silu = dict(type='SiLU')
    assert model.decoder.layer_cfg.act_cfg == model.decoder.\
        query_pos_act_cfg == model.decoder.pre_bbox_act_cfg == model.\
        decoder.lqe_cfg.act_cfg == model.bbox_head.reg_act_cfg == silu
    assert model.decoder.get('query_pos_method', 'default') == 'default'
    assert model.decoder.layer_cfg.num_points == \
        base.model.decoder.layer_cfg.num_points
    assert model.backbone.frozen_stages == -1
    assert model.backbone.norm_cfg.requires_grad
    assert not model.backbone.norm_eval
    assert cfg.train_dataloader.batch_size == base.train_dataloader.batch_size


def official_name(name):
    """The official name of one of our D-FINE parameters, where the
    regexes need it: D-FINE's encoder is our neck, and everything past it
    is its decoder (``memory_proj.1`` is ``decoder.enc_output.norm``).
    HGNetV2 keeps the official names."""
    if name.startswith('backbone.'):
        return name
    if name.startswith('neck.'):
        return 'encoder.' + name[len('neck.'):]
    if name.startswith('memory_proj.1.'):
        return 'decoder.enc_output.norm.' + name.split('.')[-1]
    return 'decoder.' + name


def check_groups(model, cfg, groups, backbone_lr):
    """Each trainable parameter's lr and weight decay in the built
    optimizer, as the official groups give them."""
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    group_of = {id(p): g for g in optimizer.param_groups for p in g['params']}
    lr = cfg.optim_wrapper.optimizer.lr
    wd = cfg.optim_wrapper.optimizer.weight_decay
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        official = official_name(name)
        matched = [g for g in groups if re.findall(g[0], official)]
        # The official optimizer refuses a parameter in two groups.
        assert len(matched) <= 1, official
        want_lr, want_wd = lr, wd
        if matched:
            _, in_backbone, no_decay = matched[0]
            want_lr = backbone_lr if in_backbone else lr
            want_wd = 0 if no_decay else wd
        group = group_of[id(param)]
        assert group['lr'] == pytest.approx(want_lr, rel=1e-12), name
        assert group['weight_decay'] == pytest.approx(want_wd), name


def official_count(model):
    """Our parameter count as the official model counts it: frozen
    BatchNorms as buffers; ``up`` and ``reg_scale`` as parameters, and the
    padding row of the denoising label embedding (``num_classes + 1``
    rows there)."""
    frozen_norms = sum(
        p.numel() for m in model.modules()
        if isinstance(m, nn.BatchNorm2d) and not m.weight.requires_grad
        for p in m.parameters())
    return (sum(p.numel() for p in model.parameters()) - frozen_norms + 2 +
            model.decoder.embed_dims)


@pytest.mark.parametrize('size', [
    'n', 's', 'm',
    pytest.param('l', marks=pytest.mark.slow),
    pytest.param('x', marks=pytest.mark.slow)
])
def test_dfine_params_and_groups(size):
    """The official model's parameter count, within the README's rounding,
    and the official groups, for D-FINE and DEIM-D-FINE (whose backbone is
    trained whole)."""
    model = build_model(dfine_config(size), pretrained=False)
    assert official_count(model) == OFFICIAL_PARAMS[size]
    assert abs(official_count(model) / 1e6 - README_PARAMS[size]) < 1
    cfg = Config.fromfile(dfine_config(size))
    check_groups(model, cfg, GROUPS['dfine'][size], DFINE[size][14])
    deim = Config.fromfile(deim_config(size))
    model = build_model(deim, pretrained=False)
    assert all(p.requires_grad for p in model.parameters())
    check_groups(model, deim, GROUPS['deim'][size], DEIM[size][5])


def test_dfine_n_trains_and_predicts():
    """D-FINE-N built from its config: the loss terms of every output, a
    step's gradients, and 300 boxes per image at 320 x 320; no decoder
    input projection (the encoder is 128 wide, as the decoder)."""
    torch.manual_seed(0)
    model = build_model(dfine_config('n'), pretrained=False)
    model.init_weights()
    assert all(isinstance(p, nn.Identity) for p in model.decoder_input_proj)
    samples = make_det_samples([(320, 320)], [[[8, 8, 200, 250]]])
    losses = model.train().loss(torch.rand(1, 3, 320, 320), samples)
    assert {'loss_fgl', 'd0.loss_ddf', 'enc_loss_cls', 'pre.loss_cls',
            'dn_loss_fgl'} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.stem.stem1.conv.weight.grad.any()
    with torch.no_grad():
        [result] = model.eval().predict(torch.rand(1, 3, 320, 320), samples)
    assert result.pred_instances.bboxes.shape == (300, 4)


@pytest.mark.parametrize('config', [
    'dfine_riformer_s12_132e_coco.py', 'dfine_riformer_s24_132e_coco.py'
])
def test_dfine_riformer(config):
    """D-FINE-S's and -M's heads and recipes on RIFormer-S12 and -S24:
    ImageNet's mean/std, mmpretrain's weights, the backbone's norms,
    biases and layer scales not decayed; a training step."""
    arch, size = ('s12', 's') if 's12' in config else ('s24', 'm')
    cfg = Config.fromfile(ROOT / 'configs/dfine' / config)
    base = Config.fromfile(dfine_config(size))
    assert cfg.model.backbone.type == 'RIFormer'
    assert cfg.model.backbone.arch == arch
    assert f'riformer-{arch}_' in cfg.model.backbone.init_cfg.checkpoint
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    assert cfg.model.data_preprocessor.std == [58.395, 57.12, 57.375]
    for key in ('neck', 'decoder', 'bbox_head'):
        expected = dict(base.model[key])
        if key == 'neck':
            expected['in_channels'] = [128, 320, 512]
        assert cfg.model[key] == expected
    assert cfg.train_cfg == base.train_cfg
    assert cfg.custom_hooks == base.custom_hooks
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == dict(
        backbone=dict(lr_mult=base.optim_wrapper.paramwise_cfg.custom_keys.
                      backbone.lr_mult))
    torch.manual_seed(0)
    model = build_model(cfg, {'model.data_preprocessor.batch_augments': None},
                        pretrained=False).train()
    losses = model.loss(torch.rand(1, 3, 320, 320),
                        make_det_samples([(320, 320)], [[[8, 8, 200, 250]]]))
    assert all(torch.isfinite(v) for v in losses.values())
