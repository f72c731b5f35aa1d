# Copyright (c) OpenMMLab. All rights reserved.
import copy

import onnxruntime
import pytest
import torch
from mmdet.registry import MODELS
from torch import nn

from mmriformer.testing import (assert_float32_error_within,
                                assert_float64_close, logged_messages,
                                max_rel_diff, randomize_)
from mmriformer.models import RIFormerBlock, switch_to_deploy
from mmriformer.models.backbones import RIFormer

ARCHS = ['s12', 's24', 's36', 'm36', 'm48']
STAGES = (0, 2, 4, 6)


def mmpretrain_riformer(**kwargs):
    from mmpretrain.models.backbones import RIFormer as MMPretrainRIFormer
    return MMPretrainRIFormer(**kwargs)


@pytest.mark.parametrize('arch', ARCHS)
def test_matches_mmpretrain(arch):
    """Same weights, same outputs as mmpretrain's RIFormer; same keys."""
    theirs = randomize_(mmpretrain_riformer(arch=arch, out_indices=STAGES))
    ours = RIFormer(arch=arch, out_indices=STAGES)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.double().eval(), ours.double().eval()
    for shape in [(1, 3, 128, 128), (2, 3, 160, 96)]:
        x = torch.randn(shape, dtype=torch.float64)
        with torch.no_grad():
            expected, got = theirs(x), ours(x)
        assert len(got) == 4
        # float64: rounding through <= 48 blocks stays near 1e-13; a wrong
        # term differs by >= 1e-3 (see assert_float64_close).
        assert_float64_close(expected, got)


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('norm_cfg', [
    dict(type='GN', num_groups=1),
    dict(type='LN2d', eps=1e-6),
])
def test_switch_to_deploy_is_exact(arch, norm_cfg):
    model = randomize_(
        RIFormer(arch=arch, norm_cfg=norm_cfg, out_indices=STAGES))
    model.double().eval()
    x = torch.randn(2, 3, 128, 96, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)
        model.switch_to_deploy()
        got = model(x)
    assert model.deploy
    # Folded in and run in float64: only rounding (~1e-13) separates the
    # forms, a wrong fold >= 1e-3 (see assert_float64_close).
    assert_float64_close(expected, got)
    for block in model.modules():
        if isinstance(block, RIFormerBlock):
            assert block.deploy and block.fused is not None
            assert {n for n, _ in block.named_parameters()} == {
                'norm_reparam.weight', 'norm_reparam.bias', 'mlp.fc1.weight',
                'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias'
            }


@pytest.mark.parametrize('norm_cfg', [
    dict(type='GN', num_groups=2),
    dict(type='BN'),
])
def test_switch_to_deploy_other_norms(norm_cfg):
    """Norms without a fused path fold exactly through the generic one."""
    model = randomize_(
        RIFormer(arch='s12', norm_cfg=norm_cfg, out_indices=STAGES))
    model.double().eval()
    x = torch.randn(1, 3, 96, 96, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)
        switch_to_deploy(model)
        got = model(x)
    # float64 fold and run: rounding ~1e-13, a wrong fold >= 1e-3.
    assert_float64_close(expected, got)


def test_deploy_loads_every_checkpoint_form():
    """deploy=True accepts train weights, mmpretrain deploy and our deploy."""
    theirs = randomize_(mmpretrain_riformer(arch='s12', out_indices=STAGES))
    theirs.double().eval()
    x = torch.randn(1, 3, 128, 96, dtype=torch.float64)
    with torch.no_grad():
        expected = theirs(x)
    train_state = copy.deepcopy(theirs.state_dict())
    theirs.switch_to_deploy()
    mmpretrain_deploy_state = theirs.state_dict()
    assert any('norm_reparam' in k for k in mmpretrain_deploy_state)

    # Everything in float64 (the folds on load too): the forms differ by
    # rounding (~1e-13) only, a wrong fold by >= 1e-3.
    ours_deploy_state = None
    for state in (train_state, mmpretrain_deploy_state):
        model = RIFormer(arch='s12', out_indices=STAGES, deploy=True)
        model.double().eval()
        model.load_state_dict(state, strict=True)
        with torch.no_grad():
            assert_float64_close(expected, model(x))
        ours_deploy_state = model.state_dict()
    model = RIFormer(arch='s12', out_indices=STAGES, deploy=True)
    model.double().eval()
    model.load_state_dict(ours_deploy_state, strict=True)
    with torch.no_grad():
        assert_float64_close(expected, model(x))


def test_train_model_rejects_deploy_checkpoint():
    deployed = RIFormer(arch='s12', deploy=True)
    with pytest.raises(ValueError, match='deploy=True'):
        RIFormer(arch='s12').load_state_dict(deployed.state_dict())


def test_build_from_mmdet_registry():
    model = MODELS.build(
        dict(type='RIFormer', arch='s24', out_indices=(2, 4, 6),
             norm_cfg=dict(type='LN2d', eps=1e-6)))
    outs = model(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 128, 8, 12),
                                             (1, 320, 4, 6),
                                             (1, 512, 2, 3)]
    assert model.out_channels == [128, 320, 512]
    assert isinstance(model.norm2, nn.LayerNorm)


def test_build_from_mmpretrain_config():
    """In mmpretrain's scope ours is 'mmdet.RIFormer'; theirs stays."""
    from mmengine.registry import DefaultScope
    from mmpretrain.models.backbones import RIFormer as MMPretrainRIFormer
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = PRETRAIN_MODELS.build(
            dict(type='ImageClassifier',
                 backbone=dict(type='mmdet.RIFormer', arch='s12'),
                 neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='LinearClsHead', num_classes=10,
                           in_channels=512)))
        assert isinstance(classifier.backbone, RIFormer)
        assert isinstance(
            PRETRAIN_MODELS.build(dict(type='RIFormer')), MMPretrainRIFormer)
    logits = classifier(torch.randn(2, 3, 64, 64), mode='tensor')
    assert logits.shape == (2, 10)


def test_custom_arch():
    arch = dict(layers=[1, 1, 2, 1], embed_dims=[8, 16, 24, 32],
                mlp_ratios=[2, 2, 3, 4], layer_scale_init_value=0.1)
    model = RIFormer(arch=arch, out_indices=STAGES)
    assert model.network[4][1].mlp.fc1.out_channels == 72
    assert torch.allclose(model.network[6][0].layer_scale_2,
                          torch.full((32, ), 0.1))
    outs = model(torch.randn(1, 3, 64, 32))
    assert [o.shape[1] for o in outs] == [8, 16, 24, 32]


def test_out_indices():
    indices = [-1, -3, 2]
    model = RIFormer(arch='s12', out_indices=indices)
    assert indices == [-1, -3, 2]  # the caller's list is not changed
    assert model.out_indices == (2, 4, 6)
    model = RIFormer(arch='s12', out_indices=(-7, -6, 6))
    outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 16, 16),
                                             (1, 128, 8, 8),
                                             (1, 512, 2, 2)]
    assert hasattr(model, 'norm0') and hasattr(model, 'norm1')
    assert not hasattr(model, 'norm2')


def test_frozen_stages():
    model = RIFormer(arch='s12', out_indices=STAGES, frozen_stages=1)
    model.init_weights()
    model.train()
    frozen = [model.patch_embed, model.network[0], model.network[1],
              model.norm0]
    for module in frozen:
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    for i in range(2, 7):
        assert model.network[i].training
        assert all(p.requires_grad for p in model.network[i].parameters())
    for i in (2, 4, 6):
        assert all(p.requires_grad
                   for p in getattr(model, f'norm{i}').parameters())
    model = RIFormer(arch='s12', frozen_stages=-1)
    assert all(p.requires_grad for p in model.parameters())


def test_norm_eval():
    model = RIFormer(arch='s12', norm_cfg=dict(type='BN'), norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert model.network[0].training


def test_drop_path_ramp():
    model = RIFormer(arch='s12', drop_path_rate=0.3)
    rates = [b.drop_path.drop_prob if hasattr(b.drop_path, 'drop_prob')
             else 0. for b in model.modules() if isinstance(b, RIFormerBlock)]
    assert rates == pytest.approx(torch.linspace(0, 0.3, 12).tolist())


def test_with_cp_same_gradients():
    torch.manual_seed(0)
    plain = randomize_(RIFormer(arch='s12', out_indices=(2, 4, 6)))
    ckpt = RIFormer(arch='s12', out_indices=(2, 4, 6), with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    grads = []
    for model in (plain, ckpt):
        model.double().train()
        sum(o.square().sum() for o in model(x)).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    # float64 backward: rounding ~1e-13 of each gradient's scale; a block
    # missed by the recomputation or its gradient lost is off by >= 1e-3.
    for name, grad in grads[0].items():
        assert_float64_close(grad, grads[1][name])


def test_deploy_form_trains():
    """Gradients flow through the fused deploy path too."""
    model = RIFormer(arch='s12', deploy=True).train()
    model(torch.randn(1, 3, 64, 64))[0].sum().backward()
    assert model.network[6][0].mlp.fc1.weight.grad is not None


def test_pretrained_with_prefix(tmp_path):
    """An mmpretrain classifier checkpoint loads; only out norms miss."""
    theirs = randomize_(mmpretrain_riformer(arch='s12')).double().eval()
    state = {f'backbone.{k}': v for k, v in theirs.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(1000, 512)
    path = tmp_path / 'riformer-s12.pth'
    torch.save({'state_dict': state, 'meta': {'epoch': 300}}, path)

    with logged_messages() as messages:
        model = RIFormer(
            arch='s12', out_indices=(2, 4, 6),
            init_cfg=dict(type='Pretrained', checkpoint=str(path),
                          prefix='backbone.')).double()
        model.init_weights()
    assert any("['norm2', 'norm4']" in m for m in messages), messages
    model.eval()
    x = torch.randn(1, 3, 96, 96, dtype=torch.float64)
    with torch.no_grad():
        # float64: rounding ~1e-13, a weight loaded wrong >= 1e-3.
        assert_float64_close(theirs(x)[0], model(x)[-1])
    assert torch.equal(model.norm2.weight,
                       torch.ones(128, dtype=torch.float64))


def test_pretrained_into_deploy_backbone(tmp_path):
    theirs = randomize_(mmpretrain_riformer(arch='s12')).double().eval()
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': theirs.state_dict()}, path)
    model = RIFormer(arch='s12', deploy=True,
                     init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.double().init_weights()  # folds the float64 weights on load
    model.eval()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        # float64: rounding ~1e-13, a wrong fold >= 1e-3.
        assert_float64_close(theirs(x), model(x))


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='s13'), r"arch='s13'.*'m36', 'm48', 's12', 's24', 's36'"),
    (dict(arch='S12'), "arch='S12'"),
    (dict(arch=dict(embed_dims=[8, 8, 8, 8])), "must have 'layers'"),
    (dict(arch=dict(layers=[1, 1, 1, 1])), "must have 'embed_dims'"),
    (dict(arch=dict(layers=[1, 1, 1], embed_dims=[8, 8, 8])),
     r'arch\["layers"\]=\[1, 1, 1\] must have 4 values'),
    (dict(out_indices=7), r'out_indices=7: 7 is out of range'),
    (dict(out_indices=(2, -8)), r'out_indices=\(2, -8\): -8 is out of range'),
    (dict(out_indices=(2, -5)), 'no position repeated'),
    (dict(frozen_stages=7), 'frozen_stages=7 is out of range'),
    (dict(frozen_stages=-2), 'frozen_stages=-2 is out of range'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RIFormer(**kwargs)


def test_wrong_input_channels():
    model = RIFormer(arch='s12', in_channels=4)
    assert model(torch.randn(1, 4, 32, 32))[0].shape == (1, 512, 1, 1)
    with pytest.raises(ValueError, match='in_channels=4'):
        model(torch.randn(1, 3, 32, 32))


def test_checkpoint_of_another_arch(tmp_path):
    path = tmp_path / 's12.pth'
    torch.save({'state_dict': RIFormer(arch='s12').state_dict()}, path)
    for arch in ('m36', 's24'):  # shapes differ / blocks are missing
        model = RIFormer(arch=arch, init_cfg=dict(type='Pretrained',
                                                  checkpoint=str(path)))
        with pytest.raises(ValueError, match='Set arch to the one'):
            model.init_weights()


def test_pretrained_bad_prefix_and_missing_file(tmp_path):
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': RIFormer(arch='s12').state_dict()}, path)
    model = RIFormer(init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                   prefix='backbone.'))
    with pytest.raises(ValueError, match="prefix 'backbone.'"):
        model.init_weights()
    model = RIFormer(init_cfg=dict(type='Pretrained',
                                   checkpoint=str(tmp_path / 'nope.pth')))
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        model.init_weights()


def test_onednn_path_matches_plain_path_and_follows_weights():
    """Inference (no grad, oneDNN, packed weights) equals the autograd path,
    and the packed weights follow load_state_dict."""

    def float64_outputs(model, x):
        with torch.no_grad():
            return copy.deepcopy(model).double()(x.double())

    # oneDNN runs in float32 only. Its error and the plain ops' error, both
    # against a float64 run of the same deploy model, must be alike (see
    # assert_float32_error_within); a stale or wrongly fused weight is off
    # by >= 1e-2, far above 8 * ~1e-6.
    model = randomize_(RIFormer(arch='s12', out_indices=STAGES), seed=1)
    model.switch_to_deploy()
    model.eval()
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        fast = model(x)
    plain = model(x)  # grad enabled: plain ops
    assert_float32_error_within(float64_outputs(model, x), fast, plain)

    other = randomize_(RIFormer(arch='s12', out_indices=STAGES), seed=2)
    other.switch_to_deploy()
    other.eval()
    reference, other_plain = float64_outputs(other, x), other(x)
    model.load_state_dict(other.state_dict())
    with torch.no_grad():
        refreshed = model(x)
    assert_float32_error_within(reference, refreshed, other_plain)
    assert max_rel_diff(fast, refreshed) > 1e-2

    clone = copy.deepcopy(model)  # packed weights are not copied
    with torch.no_grad():
        assert_float32_error_within(reference, clone(x), other_plain)


def test_deploy_block_exports_in_nchw():
    """An export of the deploy block has no Transpose (the fused path's
    channels-last token views would add them around the MLP) and computes
    what the block computes in PyTorch."""
    block = randomize_(RIFormerBlock(8), seed=3)
    block.switch_to_deploy()
    block.eval()
    x = torch.randn(1, 8, 5, 6)
    graph = torch.onnx.export(block, (x, ), dynamo=True, optimize=False,
                              verbose=False).model_proto
    assert 'Transpose' not in {node.op_type for node in graph.graph.node}
    session = onnxruntime.InferenceSession(graph.SerializeToString())
    exported = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = block(x)
    torch.testing.assert_close(torch.from_numpy(exported[0]), expected,
                               rtol=1e-5, atol=1e-5)
