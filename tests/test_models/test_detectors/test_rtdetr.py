# Copyright (c) OpenMMLab. All rights reserved.
import copy
import re
import warnings
from pathlib import Path

import pytest
import torch
from helpers import build
from mmengine.config import Config
from mmengine.runner import Runner

from mmriformer.apis import build_model
from mmriformer.models import switch_to_deploy
from mmriformer.testing import (HostSyncError, assert_float64_close,
                                forbid_host_sync, logged_messages,
                                make_det_samples, randomize_)
from mmriformer.utils.co_detr_recipe import atss_aux_head

ROOT = Path(__file__).parents[3]
CONFIGS = sorted(ROOT.glob('configs/rtdetr_riformer_*.py'))
# Trainable and frozen parameters of each architecture (docs/models.md).
NUM_PARAMS = dict(s12=20410352, s24=31039844, s36=49115980, m36=74274828,
                  m48=91584588)


def build_detector(config='rtdetr_riformer_s12.py', **model_overrides):
    options = {'model.data_preprocessor.batch_augments': None}
    options.update({f'model.{k}': v for k, v in model_overrides.items()})
    # No pretrained backbone: no download in tests.
    model = build_model(ROOT / 'configs' / config, options, pretrained=False)
    model.init_weights()
    return model


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: p.stem)
def test_configs_build(config):
    cfg = Config.fromfile(config)
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    assert cfg.model.backbone.init_cfg.checkpoint.startswith(
        'https://download.openmmlab.com/mmclassification/v1/riformer/'
        f'riformer-{cfg.model.backbone.arch}_')
    with warnings.catch_warnings():
        # The configs use the current names only.
        warnings.simplefilter('error', DeprecationWarning)
        model = build_detector(config.name)
    assert model.backbone.out_channels == cfg.model.neck.in_channels
    assert model.bbox_head.num_pred_layer == model.decoder.num_layers + 1
    assert len(model.bbox_head.cls_branches) == model.decoder.num_layers + 1
    assert sum(p.numel() for p in model.parameters()) == \
        NUM_PARAMS[cfg.model.backbone.arch]
    # nothing the model runs comes from mmcv.ops (compiled kernels)
    assert not [type(m) for m in model.modules()
                if type(m).__module__.startswith('mmcv.ops')]


# RT-DETR's ResNet-vd baselines: our parameter counts and the paper's
# (whole millions, truncated).
BASELINES = {
    'rtdetr_r18vd.py': (20184208, 20, 3),
    'rtdetr_r34vd.py': (31441412, 31, 4),
    'rtdetr_r50vd.py': (42944364, 42, 6),
    'rtdetr_r101vd.py': (76661484, 76, 6),
}


@pytest.mark.parametrize('config', sorted(BASELINES))
def test_resnet_vd_baselines(config):
    num_params, paper_millions, num_layers = BASELINES[config]
    model = build_detector(config).eval()
    count = sum(p.numel() for p in model.parameters())
    assert count == num_params and count // 10**6 == paper_millions
    assert model.backbone.deep_stem and model.backbone.avg_down
    # as the official PResNet, every stage's first block projects its input
    assert all(getattr(model.backbone, f'layer{i}')[0].downsample is not None
               for i in range(1, 5))
    assert model.decoder.num_layers == num_layers
    assert model.decoder.embed_dims == 256
    wide = config == 'rtdetr_r101vd.py'
    assert model.neck.embed_dims == (384 if wide else 256)
    with torch.no_grad():
        [result] = model.predict(torch.rand(1, 3, 128, 128),
                                 make_det_samples([(128, 128)], [[]]))
    assert result.pred_instances.bboxes.shape == (300, 4)


def test_train_step_losses_and_gradients():
    torch.manual_seed(0)
    model = build_detector().train()
    images = torch.rand(2, 3, 128, 160)
    samples = make_det_samples([(128, 160)] * 2,
                               [[[10, 20, 60, 100], [70, 30, 150, 120]], []])
    losses = model.loss(images, samples)
    layers = model.decoder.num_layers
    expected = {'loss_cls', 'loss_bbox', 'loss_iou'}
    for prefix in ['enc_', 'dn_'] + [f'd{i}.' for i in range(layers - 1)] + \
            [f'd{i}.dn_' for i in range(layers - 1)]:
        expected |= {prefix + k for k in ('loss_cls', 'loss_bbox',
                                          'loss_iou')}
    assert set(losses) == expected
    assert all(torch.isfinite(v).all() and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    grad = model.backbone.patch_embed.proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert model.dn_query_generator.label_embedding.weight.grad.abs().sum() > 0


def test_batch_without_ground_truth():
    """No boxes on this rank: finite losses, no denoising loss, every
    parameter still in the graph (DDP needs that)."""
    model = build_detector().train()
    losses = model.loss(torch.rand(2, 3, 128, 128),
                        make_det_samples([(128, 128)] * 2, [[], []]))
    assert all(torch.isfinite(v).all() for v in losses.values())
    assert losses['dn_loss_bbox'] == 0 and losses['loss_bbox'] == 0
    assert losses['loss_cls'] > 0
    sum(losses.values()).backward()
    assert model.dn_query_generator.label_embedding.weight.grad is not None


def test_train_step_without_denoising():
    model = build_detector(dn_cfg=None).train()
    losses = model.loss(torch.rand(1, 3, 128, 128),
                        make_det_samples([(128, 128)], [[[8, 8, 60, 90]]]))
    assert not any('dn_' in k for k in losses)
    assert all(torch.isfinite(v) for v in losses.values())


def test_predict_scales_to_original_image():
    model = build_detector().eval()
    # a 300x450 image resized to 128x160 by the test pipeline
    sample = make_det_samples([(128, 160)], [[]])[0]
    sample.set_metainfo(dict(ori_shape=(300, 450),
                             scale_factor=(160 / 450, 128 / 300)))
    images = torch.rand(1, 3, 128, 160)
    with torch.no_grad():
        pred = model.predict(images, [sample.clone()])[0].pred_instances
        raw = model.predict(images, [sample.clone()],
                            rescale=False)[0].pred_instances
    assert len(pred) == 300
    assert pred.bboxes[:, 0::2].max() <= 450 and pred.bboxes[:, 1::2].max(
    ) <= 300
    factor = torch.tensor([450 / 160, 300 / 128] * 2)
    torch.testing.assert_close(pred.bboxes, raw.bboxes * factor)
    assert (pred.scores[:-1] >= pred.scores[1:]).all()


def test_predictions_are_float32_under_autocast():
    """mim test with test_cfg.fp16=True runs bfloat16 autocast on a CPU;
    mmdet's CocoMetric turns the predictions into numpy, which has no
    bfloat16."""
    model = build_detector().eval()
    sample = make_det_samples([(128, 160)], [[]])[0]
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        pred = model.predict(torch.rand(1, 3, 128, 160),
                             [sample])[0].pred_instances
    assert pred.scores.dtype == pred.bboxes.dtype == torch.float32
    pred.scores.numpy(), pred.bboxes.numpy()


def test_switch_to_deploy_same_predictions():
    torch.manual_seed(0)
    model = build_detector('rtdetr_riformer_s12.py')
    randomize_(model.backbone)
    randomize_(model.neck, seed=1)
    model.double().eval()
    images = torch.rand(1, 3, 128, 128, dtype=torch.float64)
    samples = make_det_samples([(128, 128)], [[]])
    with torch.no_grad():
        before = model.predict(images, samples)[0].pred_instances
        switch_to_deploy(model)
        after = model.predict(images, samples)[0].pred_instances
    assert model.backbone.deploy
    assert not any('rbr' in n or 'layer_scale' in n
                   for n, _ in model.named_parameters())
    # Folded and run in float64: the forms differ by rounding only (~1e-13
    # through backbone, encoder and decoder), far from flipping the top-k
    # query selection; a wrong fold changes scores and boxes by >= 1e-3.
    assert torch.equal(after.labels, before.labels)
    assert_float64_close(before.scores, after.scores)
    assert_float64_close(before.bboxes, after.bboxes)


def test_eval_idx_runs_fewer_layers():
    model = build_detector(decoder=dict(eval_idx=0)).eval()
    outputs = model.forward_transformer(
        model.extract_feat(torch.rand(1, 3, 128, 128)),
        make_det_samples([(128, 128)], [[]]))
    assert outputs['all_layers_cls_scores'].shape[0] == 1


def test_num_pred_layer_follows_the_decoder():
    model = build_detector(decoder=dict(num_layers=2))
    assert model.bbox_head.num_pred_layer == 3
    assert len(model.bbox_head.reg_branches) == 3


def test_explicit_num_pred_layer_is_deprecated():
    torch.manual_seed(0)
    new = build_detector()
    torch.manual_seed(0)
    message = ('RTDETR: bbox_head.num_pred_layer is deprecated and will be '
               'removed in the next release; RTDETR sets it to '
               'decoder.num_layers + 1, so remove it from the config.')
    with logged_messages() as logged, \
            pytest.warns(DeprecationWarning, match=re.escape(message)):
        old = build_detector(bbox_head=dict(num_pred_layer=4))
    assert message in logged
    new_state, old_state = new.state_dict(), old.state_dict()
    assert list(new_state) == list(old_state)
    assert all(torch.equal(new_state[k], old_state[k]) for k in new_state)


def test_num_pred_layer_disagreeing_with_the_decoder():
    with pytest.raises(ValueError, match=r'bbox_head.num_pred_layer=7 '
                       r'disagrees with decoder.num_layers=3: RTDETR sets it '
                       r'to decoder.num_layers \+ 1 = 4; remove '
                       r'bbox_head.num_pred_layer and set decoder.num_layers '
                       r'only'):
        build_detector(bbox_head=dict(num_pred_layer=7))


def test_width_overrides():
    """``--cfg-options model.neck.embed_dims=...`` style overrides."""
    widths = {
        'neck.embed_dims': 128,
        'decoder.layer_cfg.embed_dims': 128,
        'bbox_head.embed_dims': 128
    }
    model = build_detector(**widths)
    assert model.neck.out_channels == [128] * 3
    assert model.decoder.embed_dims == 128
    # An encoder of another width than the decoder: the decoder's input
    # projection maps it (R101: 384 -> 256).
    model = build_detector(**{'neck.embed_dims': 384}).eval()
    assert [proj.conv.in_channels for proj in model.decoder_input_proj
            ] == [384] * 3
    with torch.no_grad():
        [result] = model.predict(torch.rand(1, 3, 128, 128),
                                 make_det_samples([(128, 128)], [[]]))
    assert result.pred_instances.bboxes.shape == (300, 4)
    # The old name next to the config's new one: which is meant is unclear.
    with pytest.raises(ValueError, match='HybridEncoder got hidden_dim=128 '
                       'and embed_dims=256; hidden_dim is the old name of '
                       'embed_dims: set only embed_dims'):
        build_detector(**{'neck.hidden_dim': 128})


def test_mismatched_neck_channels():
    with pytest.raises(ValueError, match=r'neck.in_channels=\[128, 320, 512'):
        build_detector(backbone=dict(arch='m36'))


def test_padded_batch_is_refused():
    model = build_detector().eval()
    sample = make_det_samples([(128, 120)], [[]])[0]
    sample.set_metainfo(dict(batch_input_shape=(128, 128)))
    with pytest.raises(ValueError, match='unpadded'):
        model.predict(torch.rand(1, 3, 128, 128), [sample])


def test_too_small_input():
    model = build_detector().eval()
    with pytest.raises(ValueError, match='fewer than num_queries=300'):
        model.predict(torch.rand(1, 3, 64, 64),
                      make_det_samples([(64, 64)], [[]]))


def test_inference_has_no_host_sync():
    """From the images to the last decoder layer's outputs, nothing reads a
    tensor value on the host (so export and CUDA graphs can follow)."""
    model = build_detector().eval()
    images = torch.rand(1, 3, 128, 128)
    samples = make_det_samples([(128, 128)], [[]])
    with torch.no_grad(), forbid_host_sync():
        outputs = model.forward_transformer(model.extract_feat(images),
                                            samples)
    assert outputs['all_layers_bbox_preds'].shape == (3, 1, 300, 4)
    # the guard sees the host reads of the loss path (the matcher's)
    model.train()
    samples = make_det_samples([(128, 128)], [[[8, 8, 60, 90]]])
    with pytest.raises(HostSyncError):
        with forbid_host_sync():
            model.loss(images, samples)


# Config errors of the tiny detector (tests/conftest.py).


def test_unknown_type_names_it(tiny):
    with pytest.raises(KeyError, match='HybridEncoderX is not in the '
                       'mmdet::model registry. Please check whether the '
                       'value of `HybridEncoderX` is correct'):
        build(tiny['cfg'], **{'neck.type': 'HybridEncoderX'})


def test_num_classes_differs_from_dataset_classes(tiny, tmp_path):
    """mmdet's NumClassCheckHook stops the real Runner before training."""
    cfg = copy.deepcopy(tiny['cfg'])
    cfg.model.bbox_head.num_classes = 3
    cfg.work_dir = str(tmp_path / 'work_dir')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(AssertionError, match=r'The `num_classes` \(3\) in '
                       r'RTDETRHead of RTDETR does not matches the length of '
                       r'`classes` 6\) in SyntheticShapesDataset'):
        runner.train()


@pytest.mark.parametrize('overrides, message', [
    ({'bbox_head.embed_dims': 16}, r'bbox_head.embed_dims=16 but the '
     r'decoder works on 32 channels; set bbox_head.embed_dims to 32'),
    ({'decoder.layer_cfg.num_levels': 2}, r'decoder.layer_cfg.num_levels=2 '
     r'but the encoder gives 3 feature levels; set decoder.layer_cfg.'
     r'num_levels to at least 3'),
], ids=['head_embed_dims', 'decoder_levels'])
def test_width_mismatch(tiny, overrides, message):
    with pytest.raises(ValueError, match=message):
        build(tiny['cfg'], **overrides)


@pytest.mark.parametrize('out_indices, message', [
    ((2, 4, 7), r'7 is out of range; network positions are 0..6'),
    ((2, 2, 6), r'must be non-empty with no position repeated'),
    ((0, 2, 4), r'neck.in_channels=\[16, 24, 32\] but the backbone gives '
     r"\[8, 16, 24\]; set neck.in_channels to the backbone's out channels"),
    ((4, 6), r'neck.in_channels=\[16, 24, 32\] but the backbone gives '
     r'\[24, 32\]'),
])
def test_bad_out_indices(tiny, out_indices, message):
    with pytest.raises(ValueError, match=message):
        build(tiny['cfg'], **{'backbone.out_indices': out_indices})


def test_other_out_indices_of_the_same_widths_work(tiny):
    """Positions 1, 3, 5 (the downsampling layers) give the widths and
    strides of 2, 4, 6: a usable model."""
    model = build(tiny['cfg'], **{'backbone.out_indices': (1, 3, 5)})
    feats = model.backbone(torch.rand(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 8, 8), (24, 4, 4),
                                                   (32, 2, 2)]


def aux_detector(**aux_overrides):
    aux_head = atss_aux_head(num_classes=80, in_channels=256,
                             num_decoder_layers=3)
    aux_head.update(aux_overrides)
    return build_detector(aux_head=aux_head)


def test_aux_head_trains_beside_the_decoder():
    torch.manual_seed(0)
    model = aux_detector().train()
    plain = build_detector().train()
    state = model.state_dict()
    plain.load_state_dict(
        {k: v for k, v in state.items() if not k.startswith('aux_head.')})
    images = torch.rand(2, 3, 128, 160)
    samples = make_det_samples([(128, 160)] * 2,
                               [[[10, 20, 60, 100], [70, 30, 150, 120]],
                                [[5, 5, 40, 40]]])
    torch.manual_seed(1)  # the same denoising queries for both
    losses = model.loss(images, samples)
    torch.manual_seed(1)
    expected = plain.loss(images, samples)
    # mmdet's ATSS head on the encoder's maps, run on its own (the same
    # seed: the same drop paths in the backbone).
    torch.manual_seed(1)
    aux = model.aux_head.loss(model.extract_feat(images), samples)
    assert set(losses) == set(expected) | {f'aux_{k}' for k in aux}
    for name, value in expected.items():
        assert torch.equal(losses[name], value), name
    for name, value in aux.items():
        assert len(value) == 3  # one per encoder map
        assert all(torch.equal(a, b)
                   for a, b in zip(losses[f'aux_{name}'], value)), name
    assert sum(losses['aux_loss_bbox']) > 0
    # It trains the backbone and encoder too.
    sum(aux['loss_bbox']).backward()
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0


def test_aux_head_unused_in_prediction():
    torch.manual_seed(0)
    model = aux_detector().eval()
    plain = build_detector().eval()
    plain.load_state_dict({
        k: v for k, v in model.state_dict().items()
        if not k.startswith('aux_head.')
    })
    images = torch.rand(1, 3, 128, 128)
    samples = make_det_samples([(128, 128)], [[]])
    with torch.no_grad():
        ours = model.predict(images, samples)[0].pred_instances
        theirs = plain.predict(images, samples)[0].pred_instances
    for key in ('labels', 'scores', 'bboxes'):
        assert torch.equal(ours[key], theirs[key])


@pytest.mark.parametrize('overrides, message', [
    (dict(in_channels=128), r'aux_head.in_channels=128 but the neck gives '
     r'\[256, 256, 256\]; set aux_head.in_channels to 256'),
    (dict(anchor_generator=dict(
        type='AnchorGenerator', ratios=[1.0], octave_base_scale=4,
        scales_per_octave=1, strides=[8, 16, 32, 64])),
     'aux_head has 4 levels .* but the neck gives 3 maps'),
])
def test_aux_head_that_does_not_fit_the_neck(overrides, message):
    with pytest.raises(ValueError, match=message):
        aux_detector(**overrides)
